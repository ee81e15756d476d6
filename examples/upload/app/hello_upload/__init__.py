"""The example application: says where it runs."""
