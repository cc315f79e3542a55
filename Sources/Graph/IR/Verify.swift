extension Graph {
    /// Checks the graph and returns it with every node output typed by shape inference.
    ///
    /// Checks, each reported with the node and op it concerns: names are non-empty and unique
    /// (values and nodes), every input is defined before use (a cycle is named as such), ops
    /// are in the catalogue, arity, attributes (unknown, ill-typed, missing), input shapes and
    /// types, and that declared output types agree with the inferred ones.
    ///
    /// - Parameter undeclared: node output names whose types were not written (the text
    ///   format lets them be omitted); they take the inferred types.
    /// - Parameter undeclaredOutputs: graph output names written without a type.
    /// - Parameter locations: `file:line` per node name, attached to errors.
    public func verified(undeclared: Set<String> = [], undeclaredOutputs: Set<String> = [], locations: [String: String] = [:]) throws(GraphError) -> Graph {
        try analysed(undeclared: undeclared, undeclaredOutputs: undeclaredOutputs, locations: locations).graph
    }

    /// Integer values known at compile time (constants, and what flows from them and from
    /// static shapes through Shape, Gather, Concat, …), by value name: what constant folding
    /// replaces. Only fully static values are listed.
    public func knownIntegerValues() throws(GraphError) -> [String: [Int]] {
        var out: [String: [Int]] = [:]
        for (name, dims) in try analysed().known {
            if let v = dims.staticSizes { out[name] = v }
        }
        return out
    }

    /// Long by choice: one walk in topological order that checks each node and infers its
    /// outputs, carrying the types and known values every later node needs.
    func analysed(undeclared: Set<String> = [], undeclaredOutputs: Set<String> = [], locations: [String: String] = [:]) throws(GraphError) -> (graph: Graph, known: [String: KnownInts]) {
        var g = self
        var types: [String: TensorType] = [:]
        var known: [String: KnownInts] = [:]
        var floats: [String: [Double]] = [:]
        func smallFloats(_ t: TensorData) -> [Double]? { t.dtype.isFloatingPoint && t.count <= ONNXLimits.knownValues ? t.doubles : nil }
        var nodeNames = Set<String>()

        func define(_ name: String, _ what: String, location: String? = nil) throws(GraphError) {
            guard !name.isEmpty else { throw GraphError.graph(message: "\(what) has an empty name", location: location) }
            guard types[name] == nil else { throw GraphError.graph(message: "duplicate value name '\(name)' (\(what))", location: location) }
        }

        /// A value's size per symbol (per image) must be one a machine could hold: anything
        /// past ONNXLimits.maxTensorBytes is a hostile or broken shape, refused before any
        /// statistics or planning multiplies it further.
        func checkSize(_ t: TensorType, _ what: String, location: String? = nil) throws(GraphError) {
            var bytes = t.dtype.byteSize
            for d in t.shape {
                let (p, overflow) = bytes.multipliedReportingOverflow(by: Swift.max(d.coefficient, 0))
                guard d.coefficient >= 0, !overflow, p <= ONNXLimits.maxTensorBytes else {
                    let per = t.shape.contains(where: \.isSymbolic) ? " per batch element" : ""
                    throw GraphError.graph(message: "\(what) has shape \(t.shape.text), larger than the limit of \(ONNXLimits.maxTensorBytes >> 30) GiB\(per)",
                                           location: location)
                }
                bytes = p
            }
        }
        for v in inputs {
            try define(v.name, "input")
            try checkSize(v.type, "input '\(v.name)'")
            types[v.name] = v.type
        }
        for p in parameters {
            try define(p.name, "parameter")
            guard p.shape.allSatisfy({ $0 >= 0 }) else {
                throw GraphError.graph(message: "parameter '\(p.name)' has a negative dimension in \(p.shape)", location: nil)
            }
            try checkSize(p.type, "parameter '\(p.name)'")
            if let t = p.initializer.tensor {
                guard t.dtype == p.dtype, t.shape == p.shape else {
                    throw GraphError.graph(message: "parameter '\(p.name)' is declared \(p.type) but holds \(t.type)", location: nil)
                }
                if let k = knownInts(of: t) { known[p.name] = k }
                if let f = smallFloats(t) { floats[p.name] = f }
            }
            types[p.name] = p.type
        }

        let producers = Dictionary(nodes.enumerated().flatMap { i, n in n.outputs.map { ($0.name, i) } }, uniquingKeysWith: { a, _ in a })

        for (index, node) in nodes.enumerated() {
            let loc = locations[node.name]
            func fail(_ message: String) -> GraphError {
                .node(name: node.name, op: node.qualifiedOp, message: message, location: loc)
            }
            guard !node.name.isEmpty else {
                throw GraphError.graph(message: "a \(node.qualifiedOp) node (the \(index + 1)th) has an empty name", location: loc)
            }
            guard nodeNames.insert(node.name).inserted else { throw fail("duplicate node name") }

            var inputTypes: [TensorType?] = []
            var inputKnown: [KnownInts?] = []
            for name in node.inputs {
                if name.isEmpty { inputTypes.append(nil); inputKnown.append(nil); continue }
                guard let t = types[name] else {
                    if let p = producers[name] {
                        if p >= index, Graph.reaches(from: index, to: p, nodes: nodes, producers: producers) {
                            throw fail("cycle: input '\(name)' depends on this node's own output")
                        }
                        throw fail("input '\(name)' is used before the node '\(nodes[p].name)' that defines it")
                    }
                    throw fail("undefined value '\(name)'")
                }
                inputTypes.append(t)
                inputKnown.append(known[name])
            }

            let (checkedNode, inferred, outKnown) = try Graph.infer(node, inputTypes: inputTypes, inputKnown: inputKnown,
                                                                    inputFloats: node.inputs.map { floats[$0] }, location: loc)
            if node.domain.isEmpty, node.op == "Constant", let out = node.outputs.first {
                switch (node.attributes["value"], node.attributes["value_float"], node.attributes["value_floats"]) {
                case (.tensor(let t)?, _, _): if let f = smallFloats(t) { floats[out.name] = f }
                case (_, .float(let v)?, _): floats[out.name] = [Double(v)]
                case (_, _, .floats(let v)?) where v.count <= ONNXLimits.knownValues: floats[out.name] = v.map(Double.init)
                default: break
                }
            }
            for (i, out) in node.outputs.enumerated() {
                if out.name.isEmpty { continue }
                try define(out.name, "output \(i) of node '\(node.name)'", location: loc)
                if !undeclared.contains(out.name) && out.type != inferred[i] {
                    throw fail("output '\(out.name)' is declared \(out.type) but \(node.op) gives \(inferred[i])")
                }
                try checkSize(inferred[i], "output '\(out.name)' of node '\(node.name)' (\(node.qualifiedOp))", location: loc)
                types[out.name] = inferred[i]
                if let k = outKnown[i] { known[out.name] = k }
            }
            g.nodes[index] = checkedNode
        }

        guard !outputs.isEmpty else { throw GraphError.graph(message: "graph '\(name)' has no outputs", location: nil) }
        var outputNames = Set<String>()
        for (i, out) in outputs.enumerated() {
            guard let t = types[out.name] else { throw GraphError.graph(message: "graph output '\(out.name)' is not defined", location: nil) }
            guard outputNames.insert(out.name).inserted else { throw GraphError.graph(message: "graph output '\(out.name)' is listed twice", location: nil) }
            if !undeclaredOutputs.contains(out.name) && out.type != t {
                throw GraphError.graph(message: "graph output '\(out.name)' is declared \(out.type) but is \(t)", location: nil)
            }
            g.outputs[i].type = t
        }
        return (g, known)
    }

    /// Checks one node against its schema and input types; returns the node with attributes
    /// normalised and output types set, its output types, and known output values.
    static func infer(_ node: Node, inputTypes: [TensorType?], inputKnown: [KnownInts?], inputFloats: [[Double]?] = [], location loc: String?)
        throws(GraphError) -> (Node, [TensorType], [KnownInts?]) {
        func fail(_ message: String) -> GraphError {
            .node(name: node.name, op: node.qualifiedOp, message: message, location: loc)
        }
        guard let schema = OpCatalogue.schema(domain: node.domain, op: node.op) else {
            throw fail("unknown op '\(node.qualifiedOp)'")
        }
        guard schema.inputs.contains(node.inputs.count) else {
            throw fail("takes \(Graph.arity(schema.inputs)) inputs, got \(node.inputs.count)")
        }
        guard schema.outputs.contains(node.outputs.count) else {
            throw fail("has \(Graph.arity(schema.outputs)) outputs, got \(node.outputs.count)")
        }

        var normalised = node.attributes
        for (name, value) in node.attributes {
            guard let spec = schema.attribute(name) else {
                throw fail("unknown attribute '\(name)' (\(node.op) takes \(schema.attributes.isEmpty ? "none" : schema.attributes.map(\.name).joined(separator: ", ")))")
            }
            if value.kind == spec.kind { continue }
            switch (value, spec.kind) {
            case (.int(let i), .float): normalised[name] = .float(Float(i))
            case (.ints(let v), .floats): normalised[name] = .floats(v.map(Float.init))
            case (.floats(let v), .ints) where v.isEmpty: normalised[name] = .ints([])
            case (.strings(let v), .ints) where v.isEmpty: normalised[name] = .ints([])
            case (.strings(let v), .floats) where v.isEmpty: normalised[name] = .floats([])
            default: throw fail("attribute '\(name)' must be \(spec.kind), got \(value.kind)")
            }
        }
        for spec in schema.attributes where spec.required && normalised[spec.name] == nil {
            throw fail("missing required attribute '\(spec.name)'")
        }
        var checkedNode = node
        checkedNode.attributes = normalised

        var ctx = InferenceContext(node: checkedNode, schema: schema, inputTypes: inputTypes, knownValues: inputKnown, floatValues: inputFloats)
        do {
            try schema.infer(&ctx)
        } catch let e as GraphError {
            throw e.located(loc)
        } catch {
            throw fail("\(error)")
        }

        var types: [TensorType] = []
        for i in node.outputs.indices {
            guard let t = ctx.outputTypes[i] else { throw fail("output \(i) has no inferred type") }
            checkedNode.outputs[i].type = t
            types.append(t)
        }
        var known = ctx.outputKnown
        if known.allSatisfy({ $0 == nil }),
           let evaluated = evaluatedKnownValues(checkedNode, inputTypes: inputTypes, inputKnown: inputKnown, outputTypes: types)
                ?? symbolicKnownValues(checkedNode, inputKnown: inputKnown) {
            known = evaluated
        }
        return (checkedNode, types, known)
    }

    /// Whether node `to` depends (transitively) on node `from`'s outputs.
    static func reaches(from: Int, to: Int, nodes: [Node], producers: [String: Int]) -> Bool {
        var stack = [to], seen = Set<Int>()
        while let n = stack.popLast() {
            if n == from { return true }
            guard seen.insert(n).inserted else { continue }
            for i in nodes[n].inputs { if let p = producers[i] { stack.append(p) } }
        }
        return false
    }

    static func arity(_ r: ClosedRange<Int>) -> String {
        if r.upperBound >= Int(Int32.max) { return "at least \(r.lowerBound)" }
        return r.lowerBound == r.upperBound ? "\(r.lowerBound)" : "\(r.lowerBound) to \(r.upperBound)"
    }

    /// The same graph with nodes reordered so each comes after the producers of its inputs
    /// (stable: an already ordered graph is unchanged). A cycle is an error naming its nodes.
    public func topologicallySorted() throws(GraphError) -> Graph {
        // Names the graph defines itself are never produced by a node (a node redefining
        // one is a duplicate, which `verified` reports).
        let defined = Set(inputs.map(\.name) + parameters.map(\.name))
        var producers: [String: Int] = [:]
        for (i, n) in nodes.enumerated() {
            for o in n.outputs where !o.name.isEmpty && !defined.contains(o.name) && producers[o.name] == nil { producers[o.name] = i }
        }
        var state = Array(repeating: 0, count: nodes.count)  // 0 new, 1 on stack, 2 done
        var order: [Int] = []
        order.reserveCapacity(nodes.count)
        for root in nodes.indices where state[root] == 0 {
            // Iterative DFS: (node, next input index).
            var stack: [(Int, Int)] = [(root, 0)]
            state[root] = 1
            while let (n, k) = stack.last {
                let ins = nodes[n].inputs
                if k < ins.count {
                    stack[stack.count - 1].1 += 1
                    guard let p = producers[ins[k]] else { continue }
                    if state[p] == 1 {
                        let cycle = stack.map { nodes[$0.0].name }.drop { $0 != nodes[p].name }
                        throw GraphError.node(name: nodes[n].name, op: nodes[n].qualifiedOp,
                                              message: "cycle through nodes \(cycle.map { "'\($0)'" }.joined(separator: " → ")) → '\(nodes[p].name)'",
                                              location: nil)
                    }
                    if state[p] == 0 {
                        state[p] = 1
                        stack.append((p, 0))
                    }
                } else {
                    state[n] = 2
                    order.append(n)
                    stack.removeLast()
                }
            }
        }
        var g = self
        g.nodes = order.map { nodes[$0] }
        return g
    }
}
