/// Limits that keep hostile files from asking for absurd allocations.
public enum ONNXLimits {
    /// Largest tensor Kiln reads: 2^33 bytes (8 GiB), more than this machine kind's models need.
    public static let maxTensorBytes = 1 << 33
    public static let maxRank = 16
    /// Largest kernel size, stride, dilation or pad a window op or Pad takes (2^32): bounds
    /// attributes read from a file before shape arithmetic multiplies them.
    public static let maxDimension = 1 << 32
    /// Most elements of a small integer or bool tensor whose values shape inference tracks
    /// (KnownInts): shapes, indices, axes.
    public static let knownValues = 64
}

/// The element count of `dims`, or nil if negative or too large.
public func checkedCount(_ dims: [Int]) -> Int? {
    var n = 1
    for d in dims {
        guard d >= 0 else { return nil }
        let (p, overflow) = n.multipliedReportingOverflow(by: d)
        guard !overflow else { return nil }
        n = p
    }
    return n
}
