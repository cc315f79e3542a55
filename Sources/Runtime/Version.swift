/// Kiln's version: `kiln --version`, the C ABI's kiln_version() and the Python package's.
public let kilnVersion = "0.1.0"
