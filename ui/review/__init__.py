"""The Curation review tab (`tab`: layout and wiring; `handlers`: its event handlers): the annotator's steps
over the review store (`flow`), the lead view (`lead`, `lead_handlers`), components and pair rendering
(`screen`, `render`), sign-in and throttling (`session`) and the keyboard shortcut table (`shortcuts`)."""
