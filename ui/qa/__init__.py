"""The Slide Q&A tab (`tab`: wiring; `layout`: components; `slide_handlers`, `chat_handlers`: its event
handlers) and what only it uses: texts (`views`), the services bundle (`services`), the
upload sandbox where uploads are sanitised (`upload_sandbox`), per-user sessions with the chat's cached
prefix (`sessions`), slide -> tissue -> tiles -> features steps (`slide_steps`), the model manager and
background tasks behind the model banner (`model_manager`, `background`), WSI-Bench examples (`examples`)
and the live WSI-P/WSI-R of answers (`live_scoring`)."""
