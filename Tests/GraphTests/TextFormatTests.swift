import Foundation
import Graph
import Testing

@Suite("Text IR round trip")
struct TextFormatTests {
    @Test("every file in models/ prints back byte for byte and parses to an equal graph")
    func modelsRoundTrip() throws {
        let files = modelFiles()
        #expect(files.count >= 4)
        for url in files {
            let text = try String(contentsOf: url, encoding: .utf8)
            let g = try TextFormat.parse(text, file: url.lastPathComponent)
            let printed = TextFormat.print(g)
            #expect(printed == text, "print(parse(\(url.lastPathComponent))) differs from the file")
            let again = try TextFormat.parse(printed)
            #expect(again == g)
            #expect(TextFormat.print(again) == printed)
        }
    }

    @Test("the committed models are what the builder produces")
    func modelsMatchBuilder() throws {
        for name in ModelZoo.names {
            let url = repositoryRoot.appendingPathComponent("models/\(name).kiln")
            let text = try String(contentsOf: url, encoding: .utf8)
            let built = try #require(try ModelZoo.model(named: name))
            #expect(try TextFormat.parse(text) == built, "models/\(name).kiln is stale: regenerate with `kiln models \(name)`")
        }
    }

    static let everything = """
        graph "odd name-1" {
          meta "a key" = "line one\\nline \\"two\\""
          meta "kiln.classes" = "cat,dog"

          input x: f32[N, 3, 4, 4]
          input "input": f32[N, 12]

          param w: f32[2, 3, 1, 1] = uniform(-0.5, 0.5)
          param b: f32[2] = [0.25, -1.5]
          buffer m: f32[2] = constant(0.75)
          param g: f32[12, 3] = normal(0.0, 0.01)
          param h: f32[3, 12] = unit_columns
          param k: f32[3] = fan_in_uniform(12)
          param v: f32[2, 2] = kaiming_uniform
          const shape: i64[2] = [0, -1]
          const big: i64[1] = [9223372036854775807]
          const flags: bool[3] = [true, false, true]
          param half: f16[3] = [0.5, 65504.0, -2.0]
          param wide: f64[2] = [0.1, 1e-300]

          c: f32[N, 2, 4, 4] = Conv(x, w, b) {dilations=[1, 1], kernel_shape=[1, 1], pads=[0, 0, 0, 0], strides=[1, 1]} @"conv/0"
          r: f32[N, 2, 4, 4] = LeakyRelu(c) {alpha=0.125}
          y: f32[N, 32] = Reshape(r, shape)
          z: f32[N, 32] = Clip(y, "", "")
          d: f32[N, 32], mask: bool[N, 32] = Dropout(z)
          cst: f32[2, 2] = Constant() {value=f32[2, 2] [1.0, 2.0, 3.5, -inf]}
          p: f32[N, 3] = MatMul("input", g)
          s: f32[N, 3] = Softmax(p) {axis=-1}
          fl: f32[N, 32] = Flatten(d) {axis=1}

          output fl: f32[N, 32]
          output s: f32[N, 3]
          output mask: bool[N, 32]
          output cst: f32[2, 2]
        }

        """

    @Test("a graph using every syntax form round-trips exactly")
    func everySyntaxForm() throws {
        let g = try TextFormat.parse(Self.everything)
        #expect(TextFormat.print(g) == Self.everything)
        #expect(try TextFormat.parse(TextFormat.print(g)) == g)
        #expect(g.name == "odd name-1")
        #expect(g.metadata["a key"] == "line one\nline \"two\"")
        #expect(g.nodes[0].name == "conv/0")
        #expect(g.parameter(named: "big")?.initializer.tensor?.int64s == [Int64.max])
        #expect(g.parameter(named: "flags")?.initializer.tensor?.int64s == [1, 0, 1])
        #expect(g.parameter(named: "half")?.initializer.tensor?.doubles == [0.5, 65504, -2])
        #expect(g.parameter(named: "wide")?.initializer.tensor?.doubles == [0.1, 1e-300])
        #expect(g.nodes.first { $0.name == "cst" }?.attributes["value"] == .tensor(TensorData(floats: [1, 2, 3.5, -.infinity], shape: [2, 2])))
    }

    @Test("omitted output types are inferred, and printing then writes them")
    func typesMayBeOmitted() throws {
        let g = try TextFormat.parse("""
            graph t {
              input x: f32[N, 8]
              y = Relu(x)
              output y
            }
            """)
        #expect(g.nodes[0].outputs[0].type == TensorType(.f32, [N, 8]))
        #expect(TextFormat.print(g).contains("y: f32[N, 8] = Relu(x)"))
    }

    @Test("weights print as a summary, which parses back and prints the same")
    func weightSummaries() throws {
        var values: [Float] = []
        for i in 0..<64 { values.append(Float(i) - 31.5) }  // mean 0, min -31.5, max 31.5
        let g = Graph(name: "w", inputs: [Value("x", TensorType(.f32, [N, 64]))],
                      parameters: [Parameter(name: "fc.weight", role: .param, data: TensorData(floats: values, shape: [1, 64]))],
                      nodes: [Node(name: "y", op: "Gemm", inputs: ["x", "fc.weight"], outputs: [Value("y", TensorType(.f32, [N, 1]))],
                                   attributes: ["transB": .int(1)])],
                      outputs: [Value("y", TensorType(.f32, [N, 1]))])
        let text = TextFormat.print(try g.verified())
        #expect(text.contains("param fc.weight: f32[1, 64] = summary(count=64, min=-31.5, max=31.5, mean=0)"))
        let parsed = try TextFormat.parse(text)
        #expect(TextFormat.print(parsed) == text)
        #expect(parsed.parameters[0].initializer == .summary(TensorSummary(count: 64, min: -31.5, max: 31.5, mean: 0)))
        // With full weights the values come back exactly.
        let full = TextFormat.print(g, options: .full)
        #expect(try TextFormat.parse(full).parameters[0].initializer.tensor?.floats == values)
    }

    @Test("names that are not plain identifiers are quoted")
    func quoting() {
        #expect(TextFormat.name("layer1.0.conv1") == "layer1.0.conv1")
        #expect(TextFormat.name("/conv/Conv_output_0") == "\"/conv/Conv_output_0\"")
        #expect(TextFormat.name("123") == "\"123\"")
        #expect(TextFormat.name("input") == "\"input\"")
        #expect(TextFormat.name("") == "\"\"")
        #expect(TextFormat.name("a\"b") == "\"a\\\"b\"")
    }
}

@Suite("Documentation")
struct DocumentationTests {
    @Test("the example in docs/IR.md parses and is in canonical form")
    func irExample() throws {
        let doc = try String(contentsOf: repositoryRoot.appendingPathComponent("docs/IR.md"), encoding: .utf8)
        let example = doc.components(separatedBy: "```\n")[1]
        let g = try TextFormat.parse(example, file: "docs/IR.md")
        #expect(TextFormat.print(g) == example)
        #expect(g.nodes.map(\.name) == ["conv", "bn", "relu", "flatten", "logits"])
    }
}
