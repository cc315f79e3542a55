import Graph

extension Pass {
    /// Removes nodes whose outputs reach no graph output, then parameters no node uses.
    public static let deadCodeElimination = Pass("dce", summary: "remove nodes and parameters that no output depends on") { g in
        eliminateDeadCode(g)
    }
}

/// Keeps a node when any of its outputs is live; a live node makes its inputs live.
public func eliminateDeadCode(_ graph: Graph) -> Graph {
    var live = Set(graph.outputs.map(\.name))
    var keep = Array(repeating: false, count: graph.nodes.count)
    for i in graph.nodes.indices.reversed() {
        let n = graph.nodes[i]
        guard n.outputs.contains(where: { live.contains($0.name) }) else { continue }
        keep[i] = true
        for input in n.inputs where !input.isEmpty { live.insert(input) }
    }
    var g = graph
    g.nodes = graph.nodes.indices.filter { keep[$0] }.map { graph.nodes[$0] }
    g.parameters = graph.parameters.filter { live.contains($0.name) }
    return g
}
