"""Source formats: landing files (discovery, hashing) and bytes -> bronze rows per format."""
