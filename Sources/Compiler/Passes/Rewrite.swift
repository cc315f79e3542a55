import Graph

/// Fusions as data: a rule is a pattern — a root node followed by links, each the sole
/// consumer of the previous match's output — and the node that replaces what matched. One
/// driver (`Rewriter`) runs the rules: it keeps the consumer index, checks that every
/// intermediate value has no other reader (no other node, no graph output), and puts the
/// replacement where the rule says. A new fusion is one rule plus its test.
public struct RewriteRule: Sendable {
    /// How many nodes a link takes.
    public enum Count: Sendable { case one, optional, oneOrMore }

    /// One step of the pattern: `matches(next, previous, context)` for the sole consumer
    /// `next` of the previous match's first output.
    public struct Link: Sendable {
        public let count: Count
        public let matches: @Sendable (Node, Node, RewriteContext) -> Bool
        public init(_ count: Count = .one, _ matches: @escaping @Sendable (Node, Node, RewriteContext) -> Bool) {
            self.count = count
            self.matches = matches
        }
    }

    /// Where the replacement goes: at the root (its other outputs may be read before the
    /// last matched node) or at the last matched node (its extra inputs may be computed
    /// after the root).
    public enum Placement: Sendable { case root, last }

    public let name: String
    public let root: @Sendable (Node, RewriteContext) -> Bool
    public let links: [Link]
    public let placement: Placement
    /// The replacement of a match, or nil to leave it (a form the rule does not take); it may
    /// add parameters through the context.
    public let replace: @Sendable (RewriteMatch, inout RewriteContext) -> Node?

    public init(_ name: String, root: @escaping @Sendable (Node, RewriteContext) -> Bool, links: [Link], placement: Placement = .last,
                replace: @escaping @Sendable (RewriteMatch, inout RewriteContext) -> Node?) {
        self.name = name
        self.root = root
        self.links = links
        self.placement = placement
        self.replace = replace
    }
}

/// What a rule matched: the root and, per link, the nodes it took (none for an optional link
/// that did not match).
public struct RewriteMatch: Sendable {
    public let root: Node
    public let links: [[Node]]
    /// Every matched node in chain order.
    public var nodes: [Node] { [root] + links.flatMap { $0 } }
    /// The chain's last node (its outputs become the replacement's).
    public var last: Node { nodes.last! }
}

/// The graph a rule looks at: value types, parameters, and who reads each value.
public struct RewriteContext: Sendable {
    public let types: [String: TensorType]
    public let parameters: [String: Parameter]
    private let readers: [String: [Int]]
    private let graphOutputs: Set<String>
    /// Parameters the replacements added (the driver appends them to the graph).
    public private(set) var added: [Parameter] = []

    init(_ g: Graph) {
        types = g.valueTypes
        parameters = Dictionary(g.parameters.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var readers: [String: [Int]] = [:]
        for (i, n) in g.nodes.enumerated() { for input in n.inputs where !input.isEmpty { readers[input, default: []].append(i) } }
        self.readers = readers
        graphOutputs = Set(g.outputs.map(\.name))
    }

    /// The index of the one node reading `value`, when nothing else (no other node, no graph
    /// output) does.
    public func soleReader(_ value: String) -> Int? {
        guard !graphOutputs.contains(value), let u = readers[value], u.count == 1 else { return nil }
        return u[0]
    }

    /// A new trained parameter holding `data`, named from `base` (made unique); its name.
    public mutating func addParameter(_ base: String, _ data: TensorData) -> String {
        let name = uniqueName(base, taken: Set(parameters.keys).union(added.map(\.name)))
        added.append(Parameter(name: name, role: .param, data: data))
        return name
    }

    /// A parameter's single value (Clip's bounds, say), when it is a constant scalar.
    public func scalar(_ name: String) -> Float? {
        guard let t = parameters[name]?.initializer.tensor, t.count == 1 else { return nil }
        return Float(t.double(at: 0))
    }
}

public enum Rewriter {
    /// `rules` in order, each over the whole graph (the next sees the previous one's result).
    public static func apply(_ rules: [RewriteRule], to graph: Graph) -> Graph {
        rules.reduce(graph) { apply($1, to: $0) }
    }

    /// One rule at every node, in order; matched nodes are not matched again.
    public static func apply(_ rule: RewriteRule, to graph: Graph) -> Graph {
        var g = graph
        var ctx = RewriteContext(g)
        var removed = Set<Int>()
        var replacement: [Int: Node] = [:]
        for i in g.nodes.indices where !removed.contains(i) && rule.root(g.nodes[i], ctx) {
            var members = [i]
            var taken: [[Node]] = []
            var ok = true
            for link in rule.links {
                var got: [Node] = []
                while let next = ctx.soleReader(g.nodes[members.last!].outputs[0].name), !removed.contains(next), !members.contains(next),
                      link.matches(g.nodes[next], g.nodes[members.last!], ctx) {
                    got.append(g.nodes[next])
                    members.append(next)
                    if link.count != .oneOrMore { break }
                }
                if got.isEmpty && link.count != .optional { ok = false; break }
                taken.append(got)
            }
            guard ok, let fused = rule.replace(RewriteMatch(root: g.nodes[i], links: taken), &ctx) else { continue }
            for m in members { removed.insert(m) }
            replacement[rule.placement == .root ? members[0] : members.last!] = fused
        }
        g.nodes = g.nodes.enumerated().compactMap { i, n in replacement[i] ?? (removed.contains(i) ? nil : n) }
        g.parameters += ctx.added
        return g
    }
}
