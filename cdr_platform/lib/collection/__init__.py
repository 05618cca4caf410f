"""Collection: CDR files from network elements, checked as files, decoded into cdr.v1 messages."""
