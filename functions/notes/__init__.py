"""Clinical notes (DocumentReference): templates, the note's shape, signing records."""
