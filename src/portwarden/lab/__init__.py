"""A throw-away lab of network namespaces: used by the tests and by `portwarden lab`."""
