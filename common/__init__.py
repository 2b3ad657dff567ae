"""What every package shares (ground floor: imports nothing of the project): write atomically (`atomic`),
JSON Lines with line numbers (`jsonl`), append-only journals for resumable runs (`journal`), and everything
about the Hugging Face Hub (`hub`: the Hub-id rule, downloads with actionable errors, the reachability probe)."""
