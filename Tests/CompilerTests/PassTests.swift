import Compiler
import Graph
import Testing

@Suite("Inference passes")
struct PassTests {
    @Test("constant folding turns an exported Shape → Gather → Unsqueeze → Concat chain into a constant Reshape target")
    func foldShapeChain() throws {
        let g = try TextFormat.parse("""
            graph t {
              input x: f32[2, 64, 1, 1]
              const zero: i64[] = [0]
              const axes0: i64[1] = [0]
              const minus1: i64[1] = [-1]
              s = Shape(x)
              n = Gather(s, zero) {axis=0}
              nu = Unsqueeze(n, axes0)
              target = Concat(nu, minus1) {axis=0}
              y = Reshape(x, target)
              output y
            }
            """)
        let out = try Pipeline.run(g, passes: [.foldConstants])
        #expect(out.nodes.map(\.op) == ["Reshape"])
        // [2, −1] by hand: the batch of x, then −1.
        #expect(out.parameter(named: "target")?.initializer.tensor?.int64s == [2, -1])
        #expect(out.parameters.map(\.name).sorted() == ["target"])
    }

    @Test("shape arithmetic through any op folds: Shape → Gather → Div → Mul gives a Slice bound (ShuffleNet's channel split)")
    func foldArithmeticChain() throws {
        // Before ops computed known values with their reference kernels, the Slice bound was
        // "must be a constant" here (known values stopped at Div and Mul).
        let g = try TextFormat.parse("""
            graph t {
              input x: f32[1, 8, 4, 4]
              const one: i64[] = [1]
              const two: i64[] = [2]
              const zero1: i64[1] = [0]
              const axis1: i64[1] = [1]
              s = Shape(x)
              c = Gather(s, one) {axis=0}
              h = Div(c, two)
              e = Mul(h, one)
              eu = Unsqueeze(e, zero1)
              y = Slice(x, zero1, eu, axis1)
              output y
            }
            """)
        // 8 channels / 2 × 1 = 4, by hand.
        #expect(g.outputs[0].type == TensorType(.f32, [1, 4, 4, 4]))
        let out = try Pipeline.run(g, passes: [.foldConstants])
        #expect(out.nodes.map(\.op) == ["Slice"])
        #expect(out.parameter(named: "eu")?.initializer.tensor?.int64s == [4])
    }

    @Test("a symbolic batch through Equal and Where (ViT's class-token Expand) keeps its shape")
    func symbolicShapeArithmetic() throws {
        let g = try TextFormat.parse("""
            graph t {
              input x: f32[N, 4]
              const cls: f32[1, 1, 4] = [1, 2, 3, 4]
              const zero: i64[] = [0]
              const axes0: i64[1] = [0]
              const minus1: i64[1] = [-1]
              const ones: i64[3] = [1, 1, 1]
              s = Shape(x)
              n = Gather(s, zero) {axis=0}
              nu = Unsqueeze(n, axes0)
              target = Concat(nu, minus1, minus1) {axis=0}
              eq = Equal(target, minus1)
              shape = Where(eq, ones, target)
              y = Expand(cls, shape)
              output y
            }
            """)
        // [N, −1, −1]: N is no −1 (a size is never negative), so the target is [N, 1, 1] and
        // the class token [1, 1, 4] expands to [N, 1, 4], by hand.
        #expect(g.outputs[0].type.shape == [Dim(symbol: "N"), 1, 4])
    }

    @Test("nodes on constants of any type fold through their reference kernels; trained parameters too, but not in a training step")
    func foldFloatConstants() throws {
        let body = """
              input x: f32[N, 3]
              const a: f32[3] = [1, 2, 0.5]
              param w: f32[3] = [1, 1, 1]
              ea = Exp(a)
              na = Neg(ea)
              ew = Exp(w)
              s = Add(x, na)
              y = Mul(s, ew)
              output y
            """
        let out = try Pipeline.run(try TextFormat.parse("graph t {\n\(body)\n}"), passes: [.foldConstants])
        #expect(out.nodes.map(\.op) == ["Add", "Mul"], "an inference graph's weights are constants while it runs")
        let folded = try #require(out.parameter(named: "na")?.initializer.tensor?.floats)
        // −eᵃ and eʷ by hand (Foundation's exp in Double, rounded to f32).
        #expect(folded == [-2.7182817, -7.389056, -1.6487212])
        #expect(out.parameter(named: "ew")?.initializer.tensor?.floats == [2.7182817, 2.7182817, 2.7182817])
        // With an optimizer step in the graph, w changes as it runs: Exp(w) stays.
        let training = try TextFormat.parse("""
            graph t {
            \(body)
              input g: f32[3]
              input lr: f32[]
              param v: f32[3] = zeros
              w2, v2 = kiln.SGD(w, g, v, lr)
              output w2
              output v2
            }
            """)
        let kept = try Pipeline.run(training, passes: [.foldConstants])
        #expect(kept.nodes.map(\.op) == ["Exp", "Add", "Mul", "SGD"], "Exp of the trained w stays")
    }

    @Test("Identity and inference Dropout go; a graph output keeps its name")
    func identities() throws {
        let g = try TextFormat.parse("""
            graph t {
              input x: f32[N, 4]
              a = Relu(x)
              b = Identity(a)
              c = Dropout(b)
              d = Sigmoid(c)
              y = Identity(d)
              output y
            }
            """)
        let out = try Pipeline.run(g, passes: [.removeIdentities])
        #expect(out.nodes.map(\.op) == ["Relu", "Sigmoid"])
        #expect(out.nodes[1].inputs == ["a"])
        #expect(out.outputs.map(\.name) == ["y"])
        #expect(out.nodes[1].outputs[0].name == "y")
    }

    @Test("BatchNormalization folds into the convolution: w'·x + b' equals BN(conv(x)) by hand")
    func batchNormFolding() throws {
        // One 1×1 conv, weight 2, BN with γ 3, β 1, mean 0.5, var 3 (ε 1): s = 3/√4 = 1.5,
        // so w' = 2·1.5 = 3 and b' = (0 − 0.5)·1.5 + 1 = 0.25.
        let g = try TextFormat.parse("""
            graph t {
              input x: f32[N, 1, 2, 2]
              param w: f32[1, 1, 1, 1] = [2.0]
              param gamma: f32[1] = [3.0]
              param beta: f32[1] = [1.0]
              buffer mean: f32[1] = [0.5]
              buffer var: f32[1] = [3.0]
              c = Conv(x, w)
              y = BatchNormalization(c, gamma, beta, mean, var) {epsilon=1.0}
              output y
            }
            """)
        let out = try Pipeline.run(g, passes: [.foldBatchNorm])
        #expect(out.nodes.map(\.op) == ["Conv"])
        let conv = out.nodes[0]
        #expect(out.parameter(named: conv.inputs[1])?.initializer.tensor?.floats == [3])
        #expect(out.parameter(named: conv.inputs[2])?.initializer.tensor?.floats == [0.25])
        #expect(conv.outputs[0].name == "y")
    }

    @Test("epilogue fusion prints its chain and round-trips through the text IR")
    func fusedChainText() throws {
        var g = try #require(try ModelZoo.model(named: "resnet8-mnist"))
        // Fixed weights so BatchNorm can fold (the passes need values, not rules).
        for i in g.parameters.indices where g.parameters[i].initializer.tensor == nil {
            let p = g.parameters[i]
            g.parameters[i].initializer = .data(TensorData(dtype: p.dtype, shape: p.shape, values: (0..<p.count).map { Double($0 % 7) / 7 + 0.5 }))
        }
        let fused = try Pipeline.run(g, passes: [.foldBatchNorm, .fuseEpilogues])
        let text = TextFormat.print(fused)
        #expect(text.contains("kiln.FusedConv[Conv→Add→Relu]"))
        #expect(text.contains("kiln.FusedConv[Conv→Relu]"))
        #expect(try TextFormat.parse(TextFormat.print(fused, options: .full)) == fused)
        #expect(TextFormat.print(try TextFormat.parse(text)) == text)
        // 7 convs, each followed (after BN folding) by a Relu, or an Add and a Relu: all fuse.
        #expect(fused.nodes.filter { $0.op == "FusedConv" }.count == 7)
        #expect(fused.nodes.filter { $0.op == "Relu" || $0.op == "Add" || $0.op == "BatchNormalization" }.isEmpty)
    }
}
