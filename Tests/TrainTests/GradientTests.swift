import Compiler
import Foundation
import Graph
import Runtime
import Testing

/// Central finite differences, in double precision through the reference kernels, against
/// the gradients the autodiff pass builds. The step runs with lr 1, no momentum and no weight
/// decay, so each parameter's gradient is p − p.next.
struct FiniteDifferences {
    let model: Graph
    let train: Graph
    let lossOnly: Graph
    let inputs: [String: HostTensor]

    init(_ text: String, input: [Int], classes: Int, loss: TrainingLoss = .crossEntropy, labelSmoothing: Float = 0, mixing: Bool = false,
         seed: UInt64 = 3) throws {
        model = try TextFormat.parse(text).materialized(seed: seed)
        // New parameters (velocities, LDAM's cosine-head weight) get their values here.
        train = try Autodiff.trainingGraph(model, options: TrainingOptions(loss: loss, labelSmoothing: labelSmoothing, momentum: 0, weightDecay: 0, mixing: mixing)).materialized(seed: seed)
        var forward = train
        forward.outputs = [forward.outputs[0]]
        lossOnly = eliminateDeadCode(forward)
        var state: UInt64 = seed &* 0x9E37_79B9_7F4A_7C15
        func next() -> Double {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Double(state >> 11) / Double(1 << 53) * 2 - 1
        }
        let n = input[0]
        var inputs: [String: HostTensor] = [:]
        inputs[model.inputs[0].name] = HostTensor(dtype: .f32, shape: input, f: (0..<input.reduce(1, *)).map { _ in next() })
        inputs[Autodiff.labels] = HostTensor(dtype: .i64, shape: [n], i: (0..<n).map { Int64(($0 * 7 + 3) % classes) })
        inputs[Autodiff.classWeights] = HostTensor(dtype: .f32, shape: [classes], f: (0..<classes).map { 0.5 + Double($0 % 3) * 0.5 })
        inputs[Autodiff.learningRate] = HostTensor(dtype: .f32, shape: [], f: [1])
        if mixing {
            inputs[Autodiff.mixLabels] = HostTensor(dtype: .i64, shape: [n], i: (0..<n).map { Int64(($0 * 3 + 1) % classes) })
            inputs[Autodiff.mix] = HostTensor(dtype: .f32, shape: [], f: [0.375])
        }
        self.inputs = inputs
    }

    func loss(_ overrides: [String: HostTensor]) throws -> Double {
        try ReferenceExecutor.evaluate(lossOnly, inputs: inputs, parameters: overrides)[Autodiff.loss]!.f[0]
    }

    /// Worst mismatch over up to `samples` elements of every trained parameter (first, last
    /// and evenly spaced ones), as a relative error, with the parameter and element.
    func check(samples: Int = 4, only: Set<String>? = nil) throws -> (checked: [String], bad: [(String, Int, Double, Double)]) {
        let out = try ReferenceExecutor.evaluate(train, inputs: inputs)
        var bad: [(String, Int, Double, Double)] = []
        var checked: [String] = []
        for p in train.parameters where p.role == .param && (only?.contains(p.name) ?? true) {
            guard let next = out[Autodiff.next(p.name)] else { continue }
            checked.append(p.name)
            let value = HostTensor(p.initializer.tensor!)
            let count = value.count
            let picks = Set((0..<min(samples, count)).map { count == 1 ? 0 : $0 * (count - 1) / max(1, min(samples, count) - 1) })
            for k in picks.sorted() {
                let analytic = value.f[k] - next.f[k]
                let h = 1e-6
                var plus = value, minus = value
                plus.f[k] += h
                minus.f[k] -= h
                let numeric = (try loss([p.name: plus]) - loss([p.name: minus])) / (2 * h)
                if abs(numeric - analytic) > 1e-7 + 1e-5 * max(abs(numeric), abs(analytic)) {
                    bad.append((p.name, k, analytic, numeric))
                }
            }
        }
        return (checked, bad)
    }
}

@Suite("Backward rules against central finite differences")
struct GradientTests {
    static let cases: [(String, [Int], Int, String)] = [
        ("conv (stride, asymmetric pads, dilation, groups, bias), batch norm, relu, global pool, gemm", [2, 4, 7, 6], 3, """
            graph t {
              input x: f32[N, 4, 7, 6]
              param w1: f32[6, 2, 3, 3] = kaiming_normal(fan_in)
              param b1: f32[6] = uniform(-0.5, 0.5)
              param g1: f32[6] = uniform(0.5, 1.5)
              param be1: f32[6] = uniform(-0.2, 0.2)
              buffer m1: f32[6] = zeros
              buffer v1: f32[6] = ones
              param fw: f32[3, 6] = kaiming_uniform
              param fb: f32[3] = fan_in_uniform(6)
              c = Conv(x, w1, b1) {strides=[2, 1], pads=[1, 0, 2, 1], dilations=[1, 2], group=2}
              n = BatchNormalization(c, g1, be1, m1, v1)
              r = Relu(n)
              p = GlobalAveragePool(r)
              f = Flatten(p)
              y = Gemm(f, fw, fb) {transB=1}
              output y
            }
            """),
        ("leaky relu, max and average pools, broadcast mul/sub/add, reshape, gemm with transA, alpha and beta", [2, 3, 6, 6], 4, """
            graph t {
              input x: f32[N, 3, 6, 6]
              param w1: f32[5, 3, 2, 2] = kaiming_normal(fan_in)
              param s: f32[5, 1, 1] = uniform(0.5, 1.5)
              param o: f32[1, 5, 1, 1] = uniform(-0.3, 0.3)
              param fw: f32[20, 4] = kaiming_uniform
              param fb: f32[1, 4] = uniform(-0.1, 0.1)
              const shape: i64[2] = [0, -1]
              c = Conv(x, w1)
              l = LeakyRelu(c) {alpha=0.2}
              m = MaxPool(l) {kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]}
              k = Mul(m, s)
              d = Sub(k, o)
              e = Add(d, m)
              a = AveragePool(e) {kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1, count_include_pad=1}
              f = Reshape(a, shape)
              ft = Transpose(f) {perm=[1, 0]}
              y = Gemm(ft, fw, fb) {transA=1, alpha=0.7, beta=1.3}
              output y
            }
            """),
        ("option-A shortcut (strided slice, channel pad), concat, matmul", [2, 2, 6, 6], 3, """
            graph t {
              input x: f32[N, 2, 6, 6]
              param w1: f32[4, 2, 3, 3] = kaiming_normal(fan_in)
              param w2: f32[4, 2, 1, 1] = kaiming_normal(fan_in)
              param fw: f32[8, 3] = kaiming_uniform
              const st: i64[2] = [0, 0]
              const en: i64[2] = [9223372036854775807, 9223372036854775807]
              const ax: i64[2] = [2, 3]
              const sp: i64[2] = [2, 2]
              const pads: i64[8] = [0, 1, 0, 0, 0, 1, 0, 0]
              c = Conv(x, w1) {strides=[2, 2], pads=[1, 1, 1, 1]}
              s = Slice(x, st, en, ax, sp)
              p = Pad(s, pads)
              a = Add(c, p)
              b = Conv(s, w2)
              q = Concat(a, b) {axis=1}
              g = GlobalAveragePool(q)
              f = Flatten(g)
              y = MatMul(f, fw)
              output y
            }
            """),
        ("sqrt (of a positive value: x² + 1), whose gradient is built from its output", [3, 5], 4, """
            graph t {
              input x: f32[N, 5]
              param w1: f32[6, 5] = kaiming_uniform
              param fw: f32[4, 6] = kaiming_uniform
              const one: f32[1] = [1]
              h = Gemm(x, w1) {transB=1}
              q = Mul(h, h)
              e = Add(q, one)
              s = Sqrt(e)
              y = Gemm(s, fw) {transB=1}
              output y
            }
            """),
    ]

    @Test("every parameter's gradient matches finite differences", arguments: 0..<4)
    func rules(_ index: Int) throws {
        let (label, shape, classes, text) = Self.cases[index]
        let fd = try FiniteDifferences(text, input: shape, classes: classes)
        let (checked, bad) = try fd.check()
        #expect(checked == fd.model.parameters.filter { $0.role == .param }.map(\.name))
        #expect(bad.isEmpty, "\(label): \(bad.map { "\($0.0)[\($0.1)] analytic \($0.2) numeric \($0.3)" })")
    }

    static let head = """
        graph t {
          input x: f32[N, 5]
          param w1: f32[6, 5] = kaiming_uniform
          param b1: f32[6] = fan_in_uniform(5)
          param fw: f32[4, 6] = kaiming_uniform
          param fb: f32[4] = fan_in_uniform(6)
          h = Gemm(x, w1, b1) {transB=1}
          r = Relu(h)
          y = Gemm(r, fw, fb) {transB=1}
          output y
        }
        """

    @Test("the losses' gradients: weighted cross-entropy, focal (γ = 2), LDAM on the cosine head, logit-adjusted, VS, with and without label smoothing, plain and mixed")
    func losses() throws {
        let counts = [50, 20, 5, 2]
        let losses: [(TrainingLoss, Float)] = [
            (.crossEntropy, 0), (.focal(gamma: 2), 0), (.ldam(classCounts: counts, maxM: 0.5, scale: 30), 0),
            (.logitAdjusted(classCounts: counts, tau: 1.5), 0), (.vectorScaling(classCounts: counts, gamma: 0.3, tau: 1), 0),
            (.crossEntropy, 0.1), (.ldam(classCounts: counts, maxM: 0.5, scale: 30), 0.2), (.vectorScaling(classCounts: counts, gamma: 0.2, tau: 0.5), 0.1),
        ]
        // Each also mixed (mixup / CutMix: second labels and λ), but for one plain case.
        for ((loss, smoothing), mixing) in losses.flatMap({ l in [(l, false), (l, true)] }) {
            let fd = try FiniteDifferences(Self.head, input: [5, 5], classes: 4, loss: loss, labelSmoothing: smoothing, mixing: mixing)
            let (checked, bad) = try fd.check(samples: 6)
            var cosine = false
            if case .ldam = loss { cosine = true }
            #expect(checked.count == (cosine ? 3 : 4), "\(checked)")
            #expect(bad.isEmpty, "\(loss), ε \(smoothing), mixed \(mixing): \(bad.map { "\($0.0)[\($0.1)] analytic \($0.2) numeric \($0.3)" })")
        }
    }

    @Test("label smoothing with focal loss is refused")
    func focalSmoothing() throws {
        let model = try TextFormat.parse(Self.head).materialized(seed: 1)
        #expect(throws: CompilerError.self) { try Autodiff.trainingGraph(model, options: TrainingOptions(loss: .focal(gamma: 1), labelSmoothing: 0.1)) }
    }

    @Test("LDAM turns a Linear head into a cosine head with a unit-column weight and no bias")
    func cosineHead() throws {
        let model = try TextFormat.parse(Self.head).materialized(seed: 1)
        let train = try Autodiff.trainingGraph(model, options: TrainingOptions(loss: .ldam(classCounts: [5, 4, 3, 2], maxM: 0.5, scale: 30)))
        let head = try #require(train.nodes.first { $0.outputs.first?.name == "y" })
        #expect(head.qualifiedOp == "kiln.NormedLinear")
        let w = try #require(train.parameter(named: head.inputs[1]))
        #expect(w.shape == [6, 4])
        #expect(train.parameter(named: "fb") == nil)
        #expect(train.outputs.map(\.name).prefix(2) == ["loss", "y"])
    }

    @Test("fuse-training (ReLU into training BatchNorm, its mask into BatchNorm backward, gradient sums into ReLU backward) changes no value")
    func fusedTrainingOps() throws {
        let (_, shape, classes, text) = Self.cases[0]
        let fd = try FiniteDifferences(text, input: shape, classes: classes)
        let fused = try Pipeline.run(fd.train, passes: [.fuseTraining])
        #expect(fused.nodes.contains { $0.op == "BatchNormTraining" && $0.attributes["activation"] == .string("Relu") })
        #expect(fused.nodes.contains { $0.op == "BatchNormGrad" && $0.inputs.count == 6 })
        #expect(!fused.nodes.contains { $0.op == "ReluGrad" })
        let a = try ReferenceExecutor.evaluate(fd.train, inputs: fd.inputs), b = try ReferenceExecutor.evaluate(fused, inputs: fd.inputs)
        for (name, t) in a { #expect(t.f == b[name]!.f, "\(name)") }
        // ResNet-8: the ReLU after each residual Add receives two summed contributions (the
        // next block's shortcut and its main path), fused as ReluGrad(a, y, b).
        let resnet = try String(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../models/resnet8-mnist.kiln").standardized, encoding: .utf8)
        let r = try FiniteDifferences(resnet, input: [2, 1, 28, 28], classes: 10)
        let rf = try Pipeline.run(r.train, passes: [.fuseTraining])
        #expect(rf.nodes.filter { $0.op == "ReluGrad" && $0.inputs.count == 3 }.count == 2)
        let ra = try ReferenceExecutor.evaluate(r.train, inputs: r.inputs), rb = try ReferenceExecutor.evaluate(rf, inputs: r.inputs)
        for (name, t) in ra { #expect(t.f == rb[name]!.f, "\(name)") }
    }

    @Test("an op without a backward rule is named with its node")
    func unsupported() throws {
        let text = """
            graph t {
              input x: f32[N, 4]
              param w: f32[4, 3] = kaiming_uniform
              h = MatMul(x, w)
              s = Softmax(h)
              output s
            }
            """
        let model = try TextFormat.parse(text).materialized(seed: 1)
        #expect {
            try Autodiff.trainingGraph(model)
        } throws: { error in
            "\(error)".contains("no backward rule for Softmax (node 's')")
        }
    }
}
