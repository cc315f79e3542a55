import Compiler
import Graph
import Testing

@Suite("Dead-code elimination")
struct DeadCodeTests {
    static let text = """
        graph t {
          input x: f32[N, 4]
          input unused_input: f32[N, 4]

          param w: f32[4, 4] = zeros
          param dead_w: f32[4, 4] = ones

          a: f32[N, 4] = MatMul(x, w)
          dead1: f32[N, 4] = MatMul(x, dead_w)
          dead2: f32[N, 4] = Relu(dead1)
          y: f32[N, 4] = Relu(a)

          output y: f32[N, 4]
        }
        """

    @Test("removes unreachable nodes and their parameters, keeps inputs")
    func removesDeadNodes() throws {
        let g = try TextFormat.parse(Self.text)
        var seen: [String] = []
        let out = try Pipeline.run(g, passes: [.deadCodeElimination]) { pass, _ in seen.append(pass.name) }
        #expect(out.nodes.map(\.name) == ["a", "y"])
        #expect(out.parameters.map(\.name) == ["w"])
        #expect(out.inputs == g.inputs)  // the signature is the caller's, not the pass's
        #expect(seen == ["dce"])
    }

    @Test("a graph with nothing dead is unchanged", arguments: ["resnet8-mnist", "resnet32-cifar"])
    func noOp(_ name: String) throws {
        let g = try #require(try ModelZoo.model(named: name))
        #expect(try Pipeline.run(g, passes: [.deadCodeElimination]) == g)
    }

    @Test("a pass that breaks the graph is reported by name")
    func brokenPass() throws {
        let g = try TextFormat.parse(Self.text)
        let breaker = Pass("drop-first", summary: "test") { g in var h = g; h.nodes.removeFirst(); return h }
        #expect {
            try Pipeline.run(g, passes: [breaker])
        } throws: { error in
            "\(error)" == "pass 'drop-first' produced an invalid graph: node 'y' (Relu): undefined value 'a'"
        }
    }
}
