"""The application the artifact example ships."""
