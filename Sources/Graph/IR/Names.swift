/// Fresh names in a graph: `base`, or `base_1`, `base_2`, … whichever is not taken yet. The one
/// naming rule of the importer, the passes, the autodiff and the exporter.
public struct NameTable: Sendable {
    public private(set) var taken: Set<String>

    public init(_ taken: Set<String> = []) { self.taken = taken }

    /// Every value and node name of `graph`.
    public init(graph: Graph) { self.init(Set(graph.valueTypes.keys).union(graph.nodes.map(\.name))) }

    /// A name from `base` not taken yet, now taken.
    public mutating func fresh(_ base: String) -> String {
        let name = uniqueName(base, taken: taken)
        taken.insert(name)
        return name
    }

    /// Marks names as taken.
    public mutating func reserve<S: Sequence>(_ names: S) where S.Element == String { taken.formUnion(names) }

    public func contains(_ name: String) -> Bool { taken.contains(name) }
}

/// `base`, or `base_1`, `base_2`, … whichever is not in `taken`.
public func uniqueName(_ base: String, taken: Set<String>) -> String {
    var n = base, k = 1
    while taken.contains(n) { n = "\(base)_\(k)"; k += 1 }
    return n
}
