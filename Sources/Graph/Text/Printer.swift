import Foundation

/// Options for printing the text IR.
public struct TextPrintOptions: Sendable {
    /// Float tensors with more elements than this print as `summary(…)`.
    public var floatInlineLimit: Int
    /// Integer and bool tensors with more elements than this print as `summary(…)`.
    public var integerInlineLimit: Int

    public init(floatInlineLimit: Int = 16, integerInlineLimit: Int = 64) {
        self.floatInlineLimit = floatInlineLimit
        self.integerInlineLimit = integerInlineLimit
    }

    /// Every tensor printed in full (the output parses back with its weights).
    public static let full = TextPrintOptions(floatInlineLimit: .max, integerInlineLimit: .max)
}

extension TextFormat {
    static let keywords: Set<String> = ["graph", "meta", "input", "output", "param", "buffer", "const"]

    /// A name as the text IR writes it: bare when it is a plain identifier, else quoted.
    public static func name(_ s: String) -> String {
        if let f = s.first, Lexer.isIdentifierStart(f), s.allSatisfy(Lexer.isIdentifierBody),
           !keywords.contains(s), s.last != "." {
            return s
        }
        return quote(s)
    }

    public static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if u.value < 0x20 || u.value == 0x7F { out += "\\u{\(String(u.value, radix: 16))}" }
                else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }

    static func float(_ f: Float) -> String { f.description }
    static func double(_ d: Double) -> String { d.description }
    static func short(_ d: Double) -> String { String(format: "%.6g", d) }

    static func type(_ t: TensorType) -> String { t.description }

    static func tensorValues(_ t: TensorData) -> String {
        let items: [String] = (0..<t.count).map { i in
            switch t.dtype {
            case .f32, .f16, .bf16: return float(Float(t.double(at: i)))
            case .f64: return double(t.double(at: i))
            case .bool: return t.int64(at: i) != 0 ? "true" : "false"
            default: return String(t.int64(at: i))
            }
        }
        return "[" + items.joined(separator: ", ") + "]"
    }

    static func summary(_ s: TensorSummary) -> String {
        "summary(count=\(s.count), min=\(short(s.min)), max=\(short(s.max)), mean=\(short(s.mean)))"
    }

    static func inline(_ t: TensorData, _ o: TextPrintOptions) -> Bool {
        t.count <= (t.dtype.isFloatingPoint ? o.floatInlineLimit : o.integerInlineLimit)
    }

    /// The values of a tensor, or their summary when it is large.
    static func tensorBody(_ t: TensorData, _ o: TextPrintOptions) -> String {
        inline(t, o) ? tensorValues(t) : summary(t.summary)
    }

    static func attribute(_ a: Attribute, _ o: TextPrintOptions) -> String {
        switch a {
        case .int(let v): return String(v)
        case .float(let v): return float(v)
        case .string(let v): return quote(v)
        case .ints(let v): return "[" + v.map(String.init).joined(separator: ", ") + "]"
        case .floats(let v): return "[" + v.map(float).joined(separator: ", ") + "]"
        case .strings(let v): return "[" + v.map(quote).joined(separator: ", ") + "]"
        case .tensor(let t): return "\(type(t.type)) \(tensorBody(t, o))"
        }
    }

    static func initializer(_ p: Parameter, _ o: TextPrintOptions) -> String {
        switch p.initializer {
        case .zeros: return "zeros"
        case .ones: return "ones"
        case .constant(let v): return "constant(\(double(v)))"
        case .uniform(let lo, let hi): return "uniform(\(double(lo)), \(double(hi)))"
        case .normal(let m, let s): return "normal(\(double(m)), \(double(s)))"
        case .kaimingNormal(let mode): return "kaiming_normal(\(mode.rawValue))"
        case .kaimingUniformDefault: return "kaiming_uniform"
        case .fanInUniform(let fan): return "fan_in_uniform(\(fan))"
        case .unitColumns: return "unit_columns"
        case .data(let t): return tensorBody(t, o)
        case .summary(let s): return summary(s)
        }
    }

    static func node(_ n: Node, _ o: TextPrintOptions) -> String {
        var s = n.outputs.map { "\(name($0.name)): \(type($0.type))" }.joined(separator: ", ")
        s += " = \(opName(n))(" + n.inputs.map(name).joined(separator: ", ") + ")"
        let shown = n.attributes.keys.sorted().filter { !(isChain($0, n)) }
        if !shown.isEmpty {
            s += " {" + shown.map { "\($0)=\(attribute(n.attributes[$0]!, o))" }.joined(separator: ", ") + "}"
        }
        if n.name != n.outputs.first?.name { s += " @\(name(n.name))" }
        return s
    }

    /// A fused node's `chain` prints with its op name, `kiln.FusedConv[Conv→Add→Relu]`.
    static func isChain(_ key: String, _ n: Node) -> Bool {
        guard key == "chain", n.domain == "kiln", case .strings(let c)? = n.attributes["chain"] else { return false }
        return !c.isEmpty && c.allSatisfy { !$0.isEmpty && $0.allSatisfy(Lexer.isIdentifierBody) && Lexer.isIdentifierStart($0.first!) }
    }

    static func opName(_ n: Node) -> String {
        let q = n.qualifiedOp
        var s = q.first.map(Lexer.isIdentifierStart) == true && q.allSatisfy(Lexer.isIdentifierBody) ? q : quote(q)
        if isChain("chain", n), case .strings(let c)? = n.attributes["chain"] { s += "[" + c.joined(separator: "→") + "]" }
        return s
    }

    /// Prints a graph in the text IR. With default options, large tensors print as summaries.
    public static func print(_ g: Graph, options: TextPrintOptions = TextPrintOptions()) -> String {
        var lines = ["graph \(name(g.name)) {"]
        for k in g.metadata.keys.sorted() { lines.append("  meta \(quote(k)) = \(quote(g.metadata[k]!))") }
        if !g.metadata.isEmpty { lines.append("") }
        for v in g.inputs { lines.append("  input \(name(v.name)): \(type(v.type))") }
        if !g.parameters.isEmpty {
            lines.append("")
            for p in g.parameters {
                lines.append("  \(p.role.rawValue) \(name(p.name)): \(type(p.type)) = \(initializer(p, options))")
            }
        }
        lines.append("")
        for n in g.nodes { lines.append("  " + node(n, options)) }
        lines.append("")
        for v in g.outputs { lines.append("  output \(name(v.name)): \(type(v.type))") }
        lines.append("}")
        return lines.joined(separator: "\n") + "\n"
    }
}
