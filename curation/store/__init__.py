"""The review store (SQLite or any SQLAlchemy URL): tables (`schema`), engine and append-only triggers (`db`),
pipeline rows (`pipeline`), roles, assignment, verdicts and adjudication (`reviews`), the `ReviewStore`
facade with its access rules (`review_store`), derived statuses (`status`), views for the UI (`views`),
the local sign-in list (`users`) and agreement statistics (`agreement`). Imports `curation`'s own modules
and the ground floor only."""
