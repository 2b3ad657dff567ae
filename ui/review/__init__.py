"""The Curation review tab (`tab`): the annotator's steps over the review store (`flow`), the lead view
(`lead`), components and pair rendering (`screen`, `render`), sign-in and throttling (`session`) and the
keyboard shortcut table (`shortcuts`)."""
