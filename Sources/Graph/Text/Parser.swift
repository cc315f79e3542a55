/// The text IR: a readable, exactly round-tripping form of a `Graph`. Grammar: `docs/IR.md`.
public enum TextFormat {
    /// Parses text IR, sorts nodes topologically and verifies the graph.
    ///
    /// - Parameter file: the name errors start with (`file:line:column: …`).
    public static func parse(_ text: String, file: String = "<text>") throws(GraphError) -> Graph {
        var parser: Parser
        do {
            var lexer = Lexer(text)
            parser = Parser(tokens: try lexer.tokenize())
            try parser.parseFile()
        } catch {
            throw GraphError.syntax(file: file, line: error.line, column: error.column, message: error.message)
        }
        let locations = parser.nodeLines.mapValues { "\(file):\($0)" }
        let raw = parser.graph
        let sorted: Graph
        do {
            sorted = try raw.topologicallySorted()
        } catch {
            if case .node(let n, _, _, _) = error { throw error.located(locations[n]) }
            throw error
        }
        return try sorted.verified(undeclared: parser.undeclared, undeclaredOutputs: parser.undeclaredOutputs, locations: locations)
    }
}

struct Parser {
    var tokens: [Token]
    var p = 0
    var graph = Graph(name: "")
    var undeclared = Set<String>()
    var undeclaredOutputs = Set<String>()
    var nodeLines: [String: Int] = [:]

    init(tokens: [Token]) { self.tokens = tokens }

    var tok: Token { tokens[p] }

    func fail(_ message: String, at t: Token? = nil) -> SyntaxError {
        let t = t ?? tok
        return SyntaxError(line: t.line, column: t.column, message: message)
    }

    func expected(_ what: String) -> SyntaxError { fail("expected \(what), found \(tok.text)") }

    mutating func next() { if p < tokens.count - 1 { p += 1 } }

    mutating func expect(_ c: Character, _ context: String = "") throws(SyntaxError) {
        guard tok.kind == .punct(c) else { throw expected("'\(c)'\(context.isEmpty ? "" : " \(context)")") }
        next()
    }

    mutating func accept(_ c: Character) -> Bool {
        if tok.kind == .punct(c) { next(); return true }
        return false
    }

    func isKeyword(_ k: String) -> Bool { tok.kind == .identifier(k) }

    mutating func keyword(_ k: String) throws(SyntaxError) {
        guard isKeyword(k) else { throw expected("'\(k)'") }
        next()
    }

    /// A bare identifier or a quoted name.
    mutating func name(_ what: String) throws(SyntaxError) -> String {
        switch tok.kind {
        case .identifier(let s), .string(let s): next(); return s
        default: throw expected(what)
        }
    }

    mutating func identifier(_ what: String) throws(SyntaxError) -> String {
        guard case .identifier(let s) = tok.kind else { throw expected(what) }
        next()
        return s
    }

    mutating func parseFile() throws(SyntaxError) {
        try keyword("graph")
        graph.name = try name("a graph name")
        try expect("{", "to open the graph body")
        var outputNames = Set<String>()
        while true {
            if tok.kind == .punct("}") { next(); break }
            if tok.kind == .end { throw fail("expected '}' to close the graph, found end of file") }
            let start = tok
            switch tok.kind {
            case .identifier("meta"):
                next()
                guard case .string(let k) = tok.kind else { throw expected("a quoted metadata key") }
                next()
                try expect("=")
                guard case .string(let v) = tok.kind else { throw expected("a quoted metadata value") }
                next()
                guard graph.metadata[k] == nil else { throw fail("duplicate metadata key \"\(k)\"", at: start) }
                graph.metadata[k] = v
            case .identifier("input"):
                next()
                let n = try name("an input name")
                try expect(":", "before the input's type")
                graph.inputs.append(Value(n, try type()))
            case .identifier("output"):
                next()
                let n = try name("an output name")
                var t = TensorType(.f32, [])
                if accept(":") { t = try type() } else { undeclaredOutputs.insert(n) }
                guard outputNames.insert(n).inserted else { throw fail("graph output '\(n)' is listed twice", at: start) }
                graph.outputs.append(Value(n, t))
            case .identifier(let k) where k == "param" || k == "buffer" || k == "const":
                next()
                try parameter(role: ParameterRole(rawValue: k)!)
            case .identifier, .string:
                try node()
            default:
                throw expected("a statement (meta, input, param, buffer, const, a node, output) or '}'")
            }
        }
        guard tok.kind == .end else { throw expected("end of file after the graph's closing '}'") }
    }

    mutating func type() throws(SyntaxError) -> TensorType {
        let t = tok
        let d = try identifier("an element type (f32, f16, bf16, f64, i8, u8, i32, i64, bool)")
        guard let dtype = DType(rawValue: d) else {
            throw fail("unknown element type '\(d)' (expected f32, f16, bf16, f64, i8, u8, i32, i64 or bool)", at: t)
        }
        try expect("[", "to open the shape")
        var dims: Shape = []
        if !accept("]") {
            repeat { dims.append(try dim()) } while accept(",")
            try expect("]", "to close the shape")
        }
        return TensorType(dtype, dims)
    }

    mutating func dim() throws(SyntaxError) -> Dim {
        var d = Dim(1)
        repeat {
            switch tok.kind {
            case .number(let s):
                guard let v = Int(s), v >= 0 else { throw fail("a dimension must be a non-negative integer, found \(s)") }
                d = d * Dim(v)
            case .identifier(let s):
                d = d * Dim(symbol: s)
            default:
                throw expected("a dimension (a size or a symbol such as N)")
            }
            next()
        } while accept("*")
        return d
    }

    mutating func intLiteral(_ what: String) throws(SyntaxError) -> Int {
        guard case .number(let s) = tok.kind, let v = Int(s) else { throw expected(what) }
        next()
        return v
    }

    enum Number {
        case int(Int)
        case float(Double)
        var double: Double { switch self { case .int(let i): return Double(i); case .float(let d): return d } }
        var isFloat: Bool { if case .float = self { return true }; return false }
    }

    /// A number, `inf`, `-inf` or `nan`; integers stay exact (no trip through Double).
    mutating func numberLiteral(_ what: String) throws(SyntaxError) -> Number {
        var negative = false
        let start = tok
        if tok.kind == .punct("-") { negative = true; next() }
        switch tok.kind {
        case .number(let s):
            next()
            let text = negative ? "-" + s : s
            if s.contains(".") || s.contains("e") || s.contains("E") {
                guard let v = Double(text) else { throw fail("malformed number '\(text)'", at: start) }
                return .float(v)
            }
            guard let v = Int(text) else { throw fail("integer \(text) is out of range", at: start) }
            return .int(v)
        case .identifier("inf"): next(); return .float(negative ? -.infinity : .infinity)
        case .identifier("nan"): next(); return .float(.nan)
        default: throw expected(what)
        }
    }

    mutating func parameter(role: ParameterRole) throws(SyntaxError) {
        let n = try name("a parameter name")
        try expect(":", "before the parameter's type")
        let typeToken = tok
        let t = try type()
        guard let shape = t.shape.staticSizes else {
            throw fail("parameter '\(n)' needs a static shape, got \(t.shape.text)", at: typeToken)
        }
        try expect("=", "before the parameter's initialiser")
        let ruleToken = tok
        let initializer: Initializer
        if tok.kind == .punct("[") {
            initializer = .data(try tensorValues(t.dtype, shape))
        } else {
            let rule = try identifier("an initialiser (zeros, ones, constant(v), uniform(lo, hi), normal(mean, std), kaiming_normal(fan_in|fan_out), kaiming_uniform, fan_in_uniform(n), unit_columns, [values] or summary(…))")
            switch rule {
            case "zeros": initializer = .zeros
            case "ones": initializer = .ones
            case "kaiming_uniform": initializer = .kaimingUniformDefault
            case "unit_columns": initializer = .unitColumns
            case "constant":
                try expect("(")
                initializer = .constant(try numberLiteral("a number").double)
                try expect(")")
            case "uniform", "normal":
                try expect("(")
                let a = try numberLiteral("a number").double
                try expect(",")
                let b = try numberLiteral("a number").double
                try expect(")")
                initializer = rule == "uniform" ? .uniform(low: a, high: b) : .normal(mean: a, std: b)
            case "kaiming_normal":
                try expect("(")
                let m = try identifier("fan_in or fan_out")
                guard let mode = Initializer.FanMode(rawValue: m) else { throw fail("expected fan_in or fan_out, found '\(m)'") }
                try expect(")")
                initializer = .kaimingNormal(mode)
            case "fan_in_uniform":
                try expect("(")
                initializer = .fanInUniform(fanIn: try intLiteral("a fan-in count"))
                try expect(")")
            case "summary":
                let s = try summaryBody()
                guard s.count == shape.reduce(1, *) else {
                    throw fail("summary count \(s.count) does not match the shape \(t.shape.text)", at: ruleToken)
                }
                initializer = .summary(s)
            default:
                throw fail("unknown initialiser '\(rule)'", at: ruleToken)
            }
        }
        graph.parameters.append(Parameter(name: n, dtype: t.dtype, shape: shape, role: role, initializer: initializer))
    }

    /// `(count=…, min=…, max=…, mean=…)` after the word `summary`.
    mutating func summaryBody() throws(SyntaxError) -> TensorSummary {
        try expect("(")
        var values: [String: Double] = [:]
        for (i, key) in ["count", "min", "max", "mean"].enumerated() {
            if i > 0 { try expect(",") }
            let k = try identifier("'\(key)'")
            guard k == key else { throw fail("expected '\(key)' in summary, found '\(k)'") }
            try expect("=")
            values[key] = try numberLiteral("a number").double
        }
        try expect(")")
        guard let c = values["count"], c >= 0, c == c.rounded() else { throw fail("summary count must be a non-negative integer") }
        return TensorSummary(count: Int(c), min: values["min"]!, max: values["max"]!, mean: values["mean"]!)
    }

    /// `[v, v, …]` holding exactly the shape's element count, converted to `dtype`.
    mutating func tensorValues(_ dtype: DType, _ shape: [Int]) throws(SyntaxError) -> TensorData {
        let open = tok
        try expect("[")
        var values: [Double] = []
        var ints: [Int64] = []
        if !accept("]") {
            repeat {
                let at = tok
                if tok.kind == .identifier("true") { values.append(1); ints.append(1); next() }
                else if tok.kind == .identifier("false") { values.append(0); ints.append(0); next() }
                else {
                    let v = try numberLiteral("a number")
                    switch v {
                    case .int(let i): ints.append(Int64(i)); values.append(Double(i))
                    case .float(let d):
                        if !dtype.isFloatingPoint { throw fail("\(dtype) tensor holds the non-integer \(d)", at: at) }
                        values.append(d)
                    }
                }
            } while accept(",")
            try expect("]", "to close the values")
        }
        let count = shape.reduce(1, *)
        guard values.count == count else {
            throw fail("\(values.count) values for shape \(shape.map { Dim($0) }.text) (\(count) elements)", at: open)
        }
        if dtype.isFloatingPoint { return TensorData(dtype: dtype, shape: shape, values: values) }
        if let bad = ints.first(where: { !TensorData.fits($0, dtype) }) {
            throw fail("value \(bad) does not fit in \(dtype)", at: open)
        }
        return TensorData(dtype: dtype, shape: shape, integers: ints)
    }

    mutating func attributeValue() throws(SyntaxError) -> Attribute {
        switch tok.kind {
        case .string(let s):
            next()
            return .string(s)
        case .number, .punct("-"), .identifier("inf"), .identifier("nan"):
            switch try numberLiteral("a number") {
            case .int(let i): return .int(i)
            case .float(let d): return .float(Float(d))
            }
        case .identifier(let d) where DType(rawValue: d) != nil:
            let t = try type()
            guard let shape = t.shape.staticSizes else { throw fail("a tensor attribute needs a static shape") }
            if isKeyword("summary") {
                next()
                _ = try summaryBody()
                throw fail("a summarised tensor attribute has no values; print the graph with full weights to round-trip it")
            }
            return .tensor(try tensorValues(t.dtype, shape))
        case .punct("["):
            next()
            if accept("]") { return .ints([]) }
            if case .string = tok.kind {
                var items: [String] = []
                repeat {
                    guard case .string(let s) = tok.kind else { throw expected("a string") }
                    items.append(s)
                    next()
                } while accept(",")
                try expect("]", "to close the list")
                return .strings(items)
            }
            var items: [Number] = []
            repeat { items.append(try numberLiteral("a number")) } while accept(",")
            try expect("]", "to close the list")
            if items.contains(where: \.isFloat) { return .floats(items.map { Float($0.double) }) }
            return .ints(items.map { if case .int(let i) = $0 { return i }; return 0 })
        default:
            throw expected("an attribute value (number, string, list or tensor)")
        }
    }

    mutating func node() throws(SyntaxError) {
        let start = tok
        var outputs: [Value] = []
        repeat {
            let n = try name("an output name")
            if accept(":") { outputs.append(Value(n, try type())) }
            else { outputs.append(Value(n, TensorType(.f32, []))); undeclared.insert(n) }
        } while accept(",")
        try expect("=", "after the node's outputs")
        let opToken = tok
        let qualified = try name("an op name")
        var domain = "", op = qualified
        if let dot = qualified.lastIndex(of: ".") {
            domain = String(qualified[..<dot])
            op = String(qualified[qualified.index(after: dot)...])
        }
        guard !op.isEmpty else { throw fail("empty op name", at: opToken) }
        var chain: [String]? = nil
        if accept("[") {
            var c: [String] = []
            repeat { c.append(try identifier("an op name in the fused chain")) } while accept("→")
            try expect("]", "to close the fused chain")
            chain = c
        }
        try expect("(", "to open the inputs of \(qualified)")
        var inputs: [String] = []
        if !accept(")") {
            repeat { inputs.append(try name("an input name")) } while accept(",")
            try expect(")", "to close the inputs of \(qualified)")
        }
        var attributes: [String: Attribute] = [:]
        if accept("{") {
            if !accept("}") {
                repeat {
                    let at = tok
                    let k = try identifier("an attribute name")
                    try expect("=", "after attribute '\(k)'")
                    guard attributes[k] == nil else { throw fail("attribute '\(k)' is given twice", at: at) }
                    attributes[k] = try attributeValue()
                } while accept(",")
                try expect("}", "to close the attributes")
            }
        }
        if let chain {
            guard attributes["chain"] == nil else { throw fail("the chain is given twice", at: opToken) }
            attributes["chain"] = .strings(chain)
        }
        var nodeName = outputs[0].name
        if accept("@") { nodeName = try name("a node name after '@'") }
        if nodeLines[nodeName] == nil { nodeLines[nodeName] = start.line }
        graph.nodes.append(Node(name: nodeName, op: op, domain: domain, inputs: inputs, outputs: outputs, attributes: attributes))
    }
}
