"""The editor's engine: grades as ffmpeg filters, frame-exact previews and renders, the export
that stream-copies what it can, AI providers, and full-reference scores. Plain values in and
out; nothing here knows about HTTP or the database."""
