import Graph

/// Which nodes read each value: what the fusion passes ask before folding a value away.
struct Consumers {
    private var readers: [String: [Int]] = [:]
    private let graphOutputs: Set<String>

    init(_ g: Graph) {
        for (i, n) in g.nodes.enumerated() { for input in n.inputs where !input.isEmpty { readers[input, default: []].append(i) } }
        graphOutputs = Set(g.outputs.map(\.name))
    }

    /// The index of the one node reading `value`, when nothing else (no other node, no graph
    /// output) does.
    func sole(_ value: String) -> Int? {
        guard !graphOutputs.contains(value), let u = readers[value], u.count == 1 else { return nil }
        return u[0]
    }
}
