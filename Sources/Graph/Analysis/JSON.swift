/// A minimal JSON writer: deterministic key order, no Foundation round trip.
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    /// Keys keep the order given.
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool { a.render() == b.render() }

    public func render(indent: Int? = 2) -> String {
        var out = ""
        write(&out, indent: indent, level: 0)
        return out
    }

    static func escape(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let h = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }

    private func write(_ out: inout String, indent: Int?, level: Int) {
        let nl = indent == nil ? "" : "\n"
        func pad(_ l: Int) -> String { indent.map { String(repeating: " ", count: $0 * l) } ?? "" }
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): out += d.isFinite ? d.description : "null"
        case .string(let s): out += JSONValue.escape(s)
        case .array(let a):
            if a.isEmpty { out += "[]"; return }
            if a.allSatisfy({ if case .int = $0 { return true }; if case .string = $0 { return true }; return false }) {
                out += "[" + a.map { $0.render(indent: nil) }.joined(separator: ", ") + "]"
                return
            }
            out += "[" + nl
            for (i, v) in a.enumerated() {
                out += pad(level + 1)
                v.write(&out, indent: indent, level: level + 1)
                out += (i + 1 < a.count ? "," : "") + nl
            }
            out += pad(level) + "]"
        case .object(let o):
            if o.isEmpty { out += "{}"; return }
            out += "{" + nl
            for (i, (k, v)) in o.enumerated() {
                out += pad(level + 1) + JSONValue.escape(k) + (indent == nil ? ":" : ": ")
                v.write(&out, indent: indent, level: level + 1)
                out += (i + 1 < o.count ? "," : "") + nl
            }
            out += pad(level) + "}"
        }
    }
}

extension Graph {
    /// The graph as JSON: inputs, outputs, parameters (with initialiser or summary), nodes
    /// with attributes and output types, metadata.
    public func json(stats: GraphStats? = nil) -> JSONValue {
        func type(_ t: TensorType) -> [(String, JSONValue)] {
            [("dtype", .string(t.dtype.rawValue)), ("shape", .array(t.shape.map { $0.value.map(JSONValue.int) ?? .string($0.description) }))]
        }
        func value(_ v: Value) -> JSONValue { .object([("name", .string(v.name))] + type(v.type)) }
        func attr(_ a: Attribute) -> JSONValue {
            switch a {
            case .int(let i): return .int(i)
            case .float(let f): return .double(Double(f))
            case .string(let s): return .string(s)
            case .ints(let v): return .array(v.map(JSONValue.int))
            case .floats(let v): return .array(v.map { .double(Double($0)) })
            case .strings(let v): return .array(v.map(JSONValue.string))
            case .tensor(let t): return .object(type(t.type) + [("values", TextFormat.inline(t, TextPrintOptions()) ? .array(t.doubles.map(JSONValue.double)) : summary(t.summary))])
            }
        }
        func summary(_ s: TensorSummary) -> JSONValue {
            .object([("count", .int(s.count)), ("min", .double(s.min)), ("max", .double(s.max)), ("mean", .double(s.mean))])
        }
        let params: [JSONValue] = parameters.map { p in
            var fields: [(String, JSONValue)] = [("name", .string(p.name)), ("role", .string(p.role.rawValue))] + type(p.type)
            switch p.initializer {
            case .data(let t):
                fields.append(TextFormat.inline(t, TextPrintOptions()) ? ("values", .array(t.doubles.map(JSONValue.double))) : ("summary", summary(t.summary)))
            case .summary(let s): fields.append(("summary", summary(s)))
            default: fields.append(("init", .string(TextFormat.initializer(p, TextPrintOptions()))))
            }
            return .object(fields)
        }
        let nodeValues: [JSONValue] = nodes.map { n in
            .object([
                ("name", .string(n.name)), ("op", .string(n.op)), ("domain", .string(n.domain)),
                ("inputs", .array(n.inputs.map(JSONValue.string))),
                ("outputs", .array(n.outputs.map(value))),
                ("attributes", .object(n.attributes.keys.sorted().map { ($0, attr(n.attributes[$0]!)) })),
            ])
        }
        var fields: [(String, JSONValue)] = [
            ("name", .string(name)),
            ("metadata", .object(metadata.keys.sorted().map { ($0, .string(metadata[$0]!)) })),
            ("inputs", .array(inputs.map(value))),
            ("outputs", .array(outputs.map(value))),
            ("parameters", .array(params)),
            ("nodes", .array(nodeValues)),
        ]
        if let s = stats {
            fields.append(("stats", .object([
                ("batch", .int(s.batch)),
                ("trainable_parameters", .int(s.trainableParameters)),
                ("buffer_elements", .int(s.bufferElements)),
                ("constant_elements", .int(s.constantElements)),
                ("conv_gemm_flops", .int(s.denseFlops)),
                ("total_flops", .int(s.totalFlops)),
                ("activation_bytes", .int(s.activationBytes)),
                ("nodes", .array(s.nodes.map { n in
                    .object([("name", .string(n.name)), ("op", .string(n.op)),
                             ("output_shapes", .array(n.outputShapes.map { .array($0.map(JSONValue.int)) })),
                             ("parameters", .int(n.parameters)), ("flops", .int(n.flops)),
                             ("activation_bytes", .int(n.activationBytes))])
                })),
            ])))
        }
        return .object(fields)
    }
}
