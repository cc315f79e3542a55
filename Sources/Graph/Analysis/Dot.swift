import Foundation

extension Graph {
    /// The graph in Graphviz `dot` syntax: inputs and outputs as ellipses, nodes as boxes
    /// (op, name, output shape, parameter count), edges labelled with the value's shape.
    public func dot() -> String {
        func esc(_ s: String) -> String {
            s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        }
        let params = Dictionary(parameters.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var producer: [String: String] = [:]
        var lines = ["digraph \"\(esc(name))\" {", "  rankdir=TB;", "  node [fontname=\"Helvetica\", fontsize=10];",
                     "  edge [fontname=\"Helvetica\", fontsize=8];"]
        for (i, v) in inputs.enumerated() {
            let id = "in\(i)"
            producer[v.name] = id
            lines.append("  \(id) [shape=ellipse, style=filled, fillcolor=\"#dbeafe\", label=\"\(esc(v.name))\\n\(esc(v.type.description))\"];")
        }
        for (i, n) in nodes.enumerated() {
            let id = "n\(i)"
            let p = n.inputs.compactMap { params[$0] }
            var label = "\(esc(n.qualifiedOp))\\n\(esc(n.name))"
            if let o = n.outputs.first { label += "\\n\(esc(o.type.shape.text))" }
            if !p.isEmpty { label += "\\n\(p.reduce(0) { $0 + $1.count }) params" }
            let color = n.op == "Conv" || n.op == "Gemm" || n.op == "MatMul" ? "#fde68a" : "#f3f4f6"
            lines.append("  \(id) [shape=box, style=\"rounded,filled\", fillcolor=\"\(color)\", label=\"\(label)\"];")
            for input in n.inputs where !input.isEmpty {
                guard let from = producer[input] else { continue }
                lines.append("  \(from) -> \(id);")
            }
            for o in n.outputs { producer[o.name] = id }
        }
        for (i, v) in outputs.enumerated() {
            let id = "out\(i)"
            lines.append("  \(id) [shape=ellipse, style=filled, fillcolor=\"#dcfce7\", label=\"\(esc(v.name))\\n\(esc(v.type.description))\"];")
            if let from = producer[v.name] { lines.append("  \(from) -> \(id);") }
        }
        lines.append("}")
        return lines.joined(separator: "\n") + "\n"
    }
}
