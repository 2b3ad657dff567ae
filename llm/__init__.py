"""The one OpenAI-compatible LLM client (ground floor: imports only `common`): settings and the client with
structured output, retries, concurrency and dry runs (`client`), prompts with schemas and versions, results
and costs (`types`), the SQLite reply cache (`cache`), the shared command-line options (`options`) and the
`LLMError` family (`errors`). Curation, `evaluate score` and the app's live judge all call LLMs through it."""
