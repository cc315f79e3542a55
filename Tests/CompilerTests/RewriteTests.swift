import Compiler
import Graph
import Testing

@Suite("The rewrite driver")
struct RewriteTests {
    /// Relu(Relu(…(x))) → one Relu: a whole fusion in one rule, to test the driver with.
    static let collapseRelus = RewriteRule("collapse-relus", root: { n, _ in n.op == "Relu" }, links: [
        .init(.oneOrMore) { next, previous, _ in next.op == "Relu" && next.inputs == [previous.outputs[0].name] },
    ], replace: { m, _ in Node(name: m.root.name, op: "Relu", inputs: m.root.inputs, outputs: m.last.outputs) })

    func graph(_ body: String, outputs: String) throws -> Graph {
        try TextFormat.parse("""
            graph t {
              input x: f32[N, 4]
            \(body)
              output \(outputs)
            }
            """).verified()
    }

    @Test("a chain through sole consumers becomes one node where the chain ended")
    func chain() throws {
        let g = try graph("  a = Relu(x)\n  b = Relu(a)\n  c = Relu(b)\n  d = Sigmoid(c)", outputs: "d")
        let out = try Rewriter.apply(Self.collapseRelus, to: g).verified()
        #expect(out.nodes.map(\.op) == ["Relu", "Sigmoid"])
        #expect(out.nodes[0].inputs == ["x"] && out.nodes[0].outputs[0].name == "c")
    }

    @Test("a value with another reader, or a graph output, ends the chain before it")
    func soleReaders() throws {
        // b is read twice: a → b fuses, b → c does not (c keeps reading b).
        let g = try graph("  a = Relu(x)\n  b = Relu(a)\n  c = Relu(b)\n  e = Add(b, c)", outputs: "e")
        let out = try Rewriter.apply(Self.collapseRelus, to: g).verified()
        #expect(out.nodes.map(\.op) == ["Relu", "Relu", "Add"])
        #expect(out.nodes[0].inputs == ["x"] && out.nodes[0].outputs[0].name == "b")
        // a is a graph output: nothing fuses through it.
        let h = try graph("  a = Relu(x)\n  b = Relu(a)", outputs: "a\n  output b")
        #expect(try Rewriter.apply(Self.collapseRelus, to: h).verified().nodes.count == 2)
    }

    @Test("a required link that does not match leaves the root alone; replace may decline")
    func noMatch() throws {
        let g = try graph("  a = Relu(x)\n  d = Sigmoid(a)", outputs: "d")
        #expect(Rewriter.apply(Self.collapseRelus, to: g) == g)
        let declining = RewriteRule("never", root: { n, _ in n.op == "Relu" }, links: [.init(.optional) { _, _, _ in true }],
                                    replace: { _, _ in nil })
        let h = try graph("  a = Relu(x)\n  b = Relu(a)", outputs: "b")
        #expect(Rewriter.apply(declining, to: h) == h)
    }
}
