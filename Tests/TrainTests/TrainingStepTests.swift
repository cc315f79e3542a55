import Compiler
import Foundation
import Graph
import Runtime
import Testing

@Suite("The training step: losses, SGD and a whole network")
struct TrainingStepTests {
    @Test("LDAM loss and gradient on a hand-computed case")
    func ldamByHand() throws {
        let text = """
            graph t {
              input z: f32[2, 3]
              input labels: i64[2]
              input w: f32[3]
              const one: f32[] = [1]
              loss = kiln.LDAMLoss(z, labels, w) {class_counts=[100, 10, 1], max_m=0.5, scale=10}
              dz = kiln.LDAMLossGrad(one, z, labels, w) {class_counts=[100, 10, 1], max_m=0.5, scale=10}
              output loss
              output dz
            }
            """
        let g = try TextFormat.parse(text)
        let out = try ReferenceExecutor.evaluate(g, inputs: [
            "z": HostTensor(dtype: .f32, shape: [2, 3], f: [0.2, -0.1, 0.4, 0.0, 0.3, -0.2]),
            "labels": HostTensor(dtype: .i64, shape: [2], i: [2, 1]),
            "w": HostTensor(dtype: .f32, shape: [3], f: [1, 2, 3]),
        ])
        // Margins 0.5·n^(−1/4)/max: n = 100, 10, 1 → Δ = 0.158114, 0.281171, 0.5.
        // Sample 0 (class 2): rows 10·(z − Δ₂e₂) = [2, −1, −1], ℓ = ln(e² + 2e⁻¹) + 1 = 3.094923.
        // Sample 1 (class 1): rows [0, 10·(0.3 − 0.281171), −2] = [0, 0.188293, −2],
        // ℓ = ln(1 + e^0.188293 + e⁻²) − 0.188293 = 0.662935.
        // Weighted mean: (3·3.094923 + 2·0.662935) / 5 = 2.122128.
        #expect(abs(out["loss"]!.f[0] - 2.122128) < 1e-6)
        // dz = w_y / Σw · s · (softmax(rows) − onehot): sample 0 = 6·([0.909443, 0.045279, 0.045279] − e₂).
        let dz = out["dz"]!.f
        let expected = [5.456658, 0.271671, -5.728329, 1.707561, -1.938654, 0.231093]
        for (a, b) in zip(dz, expected) { #expect(abs(a - b) < 1e-5, "\(dz)") }
    }

    @Test("logit-adjusted, VS and label-smoothed cross-entropy on a hand-computed case")
    func adjustedLossesByHand() throws {
        // Expected values from the formulas evaluated in numpy (float64), independently of Kiln:
        // prior π = [100, 10, 1]/111; LA rows z + τ·log π; VS rows Δ⊙z + τ·log π with
        // Δ = (n/n_max)^γ; target (1 − ε)·e_y + ε/3; loss Σ w_y ℓ / Σ w_y, dz = w_y/Σw · Δ ⊙ (p − t).
        let cases: [(String, Double, [Double])] = [
            ("kiln.LogitAdjustedLoss(z, labels, w) {class_counts=[100, 10, 1], tau=0.5, label_smoothing=0.1}", 1.9050698760990854,
             [0.42234492, 0.08362695, -0.50597187, 0.25178928, -0.26016235, 0.00837307]),
            ("kiln.VSLoss(z, labels, w) {class_counts=[100, 10, 1], gamma=0.5, tau=1}", 3.8379519464450444,
             [0.551548673, 0.0138353882, -0.0595300012, 0.357221512, -0.114070626, 0.000350148052]),
            ("kiln.SoftmaxCrossEntropy(z, labels, w) {label_smoothing=0.2}", 0.9222115460661066,
             [0.16255072, 0.11005327, -0.27260399, 0.09957247, -0.17626166, 0.07668919]),
        ]
        for (call, expectedLoss, expectedGrad) in cases {
            let grad = call.replacingOccurrences(of: "Loss(z", with: "LossGrad(one, z").replacingOccurrences(of: "Entropy(z", with: "EntropyGrad(one, z")
            let text = """
                graph t {
                  input z: f32[2, 3]
                  input labels: i64[2]
                  input w: f32[3]
                  const one: f32[] = [1]
                  loss = \(call)
                  dz = \(grad)
                  output loss
                  output dz
                }
                """
            let out = try ReferenceExecutor.evaluate(try TextFormat.parse(text), inputs: [
                "z": HostTensor(dtype: .f32, shape: [2, 3], f: [0.2, -0.1, 0.4, 0.0, 0.3, -0.2]),
                "labels": HostTensor(dtype: .i64, shape: [2], i: [2, 1]),
                "w": HostTensor(dtype: .f32, shape: [3], f: [1, 2, 3]),
            ])
            #expect(abs(out["loss"]!.f[0] - expectedLoss) < 1e-6, "\(call)")
            for (a, b) in zip(out["dz"]!.f, expectedGrad) { #expect(abs(a - b) < 1e-6, "\(call): \(out["dz"]!.f)") }
        }
    }

    @Test("a mixed loss (second labels, λ) on a hand-computed case: λ·CE(labels) + (1 − λ)·CE(second labels)")
    func mixedLossByHand() throws {
        let text = """
            graph t {
              input z: f32[2, 3]
              input labels: i64[2]
              input w: f32[3]
              input labels_mix: i64[2]
              input mix: f32[]
              const one: f32[] = [1]
              loss = kiln.SoftmaxCrossEntropy(z, labels, w, labels_mix, mix)
              dz = kiln.SoftmaxCrossEntropyGrad(one, z, labels, w, labels_mix, mix)
              output loss
              output dz
            }
            """
        let out = try ReferenceExecutor.evaluate(try TextFormat.parse(text), inputs: [
            "z": HostTensor(dtype: .f32, shape: [2, 3], f: [0.2, -0.1, 0.4, 0.0, 0.3, -0.2]),
            "labels": HostTensor(dtype: .i64, shape: [2], i: [2, 1]), "labels_mix": HostTensor(dtype: .i64, shape: [2], i: [0, 2]),
            "w": HostTensor(dtype: .f32, shape: [3], f: [1, 2, 3]), "mix": HostTensor(dtype: .f32, shape: [], f: [Double(Float(0.3))]),
        ])
        // numpy, float64: 0.3·CE([2, 1]) + 0.7·CE([0, 2]), each the weighted mean Σ w_y ℓ / Σ w_y.
        #expect(abs(out["loss"]!.f[0] - 1.1623782859596676) < 1e-6)
        let expected = [-0.05515749, 0.08878152, -0.03362403, 0.2035606, 0.15477807, -0.35833867]
        for (a, b) in zip(out["dz"]!.f, expected) { #expect(abs(a - b) < 1e-6, "\(out["dz"]!.f)") }
    }

    @Test("SGD with momentum and weight decay, plain and Nesterov, on a hand-computed case")
    func sgdByHand() throws {
        for (nesterov, expected) in [(0, [0.94, -2.005]), (1, [0.895, -2.0275])] {
            let text = """
                graph t {
                  input p: f32[2]
                  input g: f32[2]
                  input v: f32[2]
                  input lr: f32[]
                  p2, v2 = kiln.SGD(p, g, v, lr) {momentum=0.9, weight_decay=0.01, nesterov=\(nesterov)}
                  output p2
                  output v2
                }
                """
            let out = try ReferenceExecutor.evaluate(try TextFormat.parse(text), inputs: [
                "p": HostTensor(dtype: .f32, shape: [2], f: [1, -2]), "g": HostTensor(dtype: .f32, shape: [2], f: [0.5, 0.25]),
                "v": HostTensor(dtype: .f32, shape: [2], f: [0.1, -0.2]), "lr": HostTensor(dtype: .f32, shape: [], f: [0.1]),
            ])
            // g' = g + 0.01·p = [0.51, 0.23]; v' = 0.9·v + g' = [0.6, 0.05];
            // p' = p − 0.1·v' = [0.94, −2.005], or with Nesterov p − 0.1·(g' + 0.9·v') = [0.895, −2.0275].
            // (Attributes are f32: 0.9 and 0.01 carry ~1e-8 relative rounding.)
            for (a, b) in zip(out["v2"]!.f, [0.6, 0.05]) { #expect(abs(a - b) < 1e-7) }
            for (a, b) in zip(out["p2"]!.f, expected) { #expect(abs(a - b) < 1e-7, "nesterov \(nesterov)") }
        }
    }

    @Test("ResNet-8's whole training step matches finite differences on sampled parameters")
    func resnet8() throws {
        let text = try String(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../models/resnet8-mnist.kiln").standardized, encoding: .utf8)
        let fd = try FiniteDifferences(text, input: [2, 1, 28, 28], classes: 10)
        let sampled: Set<String> = ["conv1.weight", "bn1.bias", "layer1.0.conv2.weight", "layer2.0.bn1.weight",
                                    "layer3.0.conv2.weight", "linear.weight", "linear.bias"]
        let (checked, bad) = try fd.check(samples: 2, only: sampled)
        #expect(Set(checked) == sampled)
        #expect(bad.isEmpty, "\(bad.map { "\($0.0)[\($0.1)] analytic \($0.2) numeric \($0.3)" })")
        // The step also carries BatchNorm's next running statistics and every velocity.
        #expect(fd.train.outputs.contains { $0.name == Autodiff.next("bn1.running_mean") })
        #expect(fd.train.outputs.filter { $0.name.hasSuffix(".velocity.next") }.count == 23)
    }
}

@Suite("The compiled training step against the reference kernels")
struct CompiledStepTests {
    /// Max over elements of |a − b| / max(|b|) for one tensor.
    static func relative(_ a: [Double], _ b: [Double]) -> Double {
        let scale = max(b.map(abs).max() ?? 0, 1e-30)
        return zip(a, b).map { abs($0 - $1) }.max().map { $0 / scale } ?? 0
    }

    /// One step through the compiled `TrainingStep` and through the reference kernels on the
    /// same graph; every state tensor compared. Returns the number compared.
    @discardableResult
    static func compare(_ model: Graph, options: TrainingOptions, batch: Int, threads: Int, label: String) throws -> Int {
        let step = try TrainingStep(model: model, options: options, batch: batch, threads: threads, seed: 4)
        let classes = step.classes
        var state: UInt32 = 99
        let images = (0..<(batch * step.imageShape.reduce(1, *))).map { _ -> Float in
            state = state &* 1_664_525 &+ 1_013_904_223
            return Float(state >> 8) / Float(1 << 23) - 1
        }
        let labels = (0..<batch).map { ($0 * 7 + 3) % classes }, weights: [Float] = (0..<classes).map { 0.5 + Float($0) * 0.1 }
        let before = step.state()
        let loss = try images.withUnsafeBufferPointer { try step.run(images: $0, labels: labels, classWeights: weights, learningRate: 0.1) }
        let after = step.state()

        let reference = try ReferenceExecutor.evaluate(step.graph, inputs: [
            step.inputName: HostTensor(dtype: .f32, shape: [batch] + step.imageShape, f: images.map(Double.init)),
            Autodiff.labels: HostTensor(dtype: .i64, shape: [batch], i: labels.map(Int64.init)),
            Autodiff.classWeights: HostTensor(dtype: .f32, shape: [classes], f: weights.map(Double.init)),
            Autodiff.learningRate: HostTensor(dtype: .f32, shape: [], f: [Double(Float(0.1))]),
        ])
        #expect(abs(Double(loss) - reference[Autodiff.loss]!.f[0]) <= 1e-4 * abs(reference[Autodiff.loss]!.f[0]), "\(label): loss")
        var checked = 0, worst = (0.0, "")
        for (name, b) in before {
            let p0 = b.floats.map(Double.init), p1 = after[name]!.floats.map(Double.init)
            let r = reference[Autodiff.next(name)]!.f
            let e = relative(p1, r)
            if e > worst.0 { worst = (e, name) }
            #expect(e <= 1e-4, "\(label) \(name): updated values differ by \(e)")
            // The update itself (p' − p), which finite differences vouch for in the reference,
            // agrees too.
            let delta = relative(zip(p1, p0).map { $0 - $1 }, zip(r, p0).map { $0 - $1 })
            #expect(delta <= 1e-3, "\(label) \(name): update differs by \(delta)")
            checked += 1
        }
        #expect(checked == before.count)
        print("\(label): \(checked) tensors, worst \(worst)")
        return checked
    }

    @Test("a SAM step (compiled, ResNet-8 with BatchNorm, momentum and weight decay) equals SAM's definition evaluated with the reference kernels")
    func samStep() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../models/resnet8-mnist.kiln").standardized
        let model = try TextFormat.parse(String(contentsOf: url, encoding: .utf8)).materialized(seed: 8)
        let (lr, wd, momentum, rho): (Float, Float, Float, Double) = (0.1, 5e-3, 0.9, 0.05)
        let options = TrainingOptions(loss: .logitAdjusted(classCounts: [50, 40, 30, 20, 10, 8, 6, 4, 3, 2], tau: 1), momentum: momentum,
                                      weightDecay: wd, exposeGradients: true)
        let batch = 3
        let step = try TrainingStep(model: model, options: options, batch: batch, threads: 2, seed: 4)
        var state: UInt32 = 5
        let images = (0..<(2 * batch * 784)).map { _ -> Float in state = state &* 1_664_525 &+ 1_013_904_223; return Float(state >> 8) / Float(1 << 23) - 1 }
        let labels = [3, 9, 0], weights: [Float] = (0..<10).map { 0.5 + Float($0) * 0.1 }
        // A plain step first, so the velocities are not zero.
        _ = try images.withUnsafeBufferPointer { try step.run(images: UnsafeBufferPointer(rebasing: $0[0..<(batch * 784)]), labels: labels, classWeights: weights, learningRate: lr) }
        let start = step.state()
        let second = Array(images[(batch * 784)...])
        _ = try second.withUnsafeBufferPointer { try step.runSAM(rho: Float(rho), images: $0, labels: labels, classWeights: weights, learningRate: lr, weightDecay: wd) }
        let got = step.state()

        // SAM by its definition, every gradient from the reference kernels in double precision.
        let inputs: [String: HostTensor] = [
            step.inputName: HostTensor(dtype: .f32, shape: [batch, 1, 28, 28], f: second.map(Double.init)),
            Autodiff.labels: HostTensor(dtype: .i64, shape: [batch], i: labels.map(Int64.init)),
            Autodiff.classWeights: HostTensor(dtype: .f32, shape: [10], f: weights.map(Double.init)),
            Autodiff.learningRate: HostTensor(dtype: .f32, shape: [], f: [Double(lr)]),
        ]
        let trained = step.graph.parameters.filter { $0.role == .param && $0.dtype == .f32 }.map(\.name)
        func host(_ values: [String: TensorData]) -> [String: HostTensor] { values.mapValues { HostTensor($0) } }
        let atW = try ReferenceExecutor.evaluate(step.graph, inputs: inputs, parameters: host(start))
        let norm = trained.map { atW[Autodiff.gradient($0)]!.f.map { $0 * $0 }.reduce(0, +) }.reduce(0, +).squareRoot()
        var perturbed = host(start)
        for name in trained {
            let g = atW[Autodiff.gradient(name)]!.f
            perturbed[name]!.f = zip(perturbed[name]!.f, g).map { $0 + rho * $1 / norm }
        }
        let atPerturbed = try ReferenceExecutor.evaluate(step.graph, inputs: inputs, parameters: perturbed)
        var checked = 0
        for name in trained {
            // v* = m·v + g(w + ε) + wd·w, w* = w − lr·v*.
            let w = start[name]!.floats.map(Double.init), v = start[Autodiff.velocity(name)]!.floats.map(Double.init)
            let g = atPerturbed[Autodiff.gradient(name)]!.f
            let vStar = (0..<w.count).map { Double(momentum) * v[$0] + g[$0] + Double(wd) * w[$0] }
            let wStar = (0..<w.count).map { w[$0] - Double(lr) * vStar[$0] }
            let e1 = Self.relative(got[name]!.floats.map(Double.init), wStar), e2 = Self.relative(got[Autodiff.velocity(name)]!.floats.map(Double.init), vStar)
            #expect(e1 <= 1e-4 && e2 <= 1e-3, "\(name): parameter \(e1), velocity \(e2)")
            // The update itself (w* − w) agrees too.
            let delta = Self.relative(zip(got[name]!.floats.map(Double.init), w).map { $0 - $1 }, zip(wStar, w).map { $0 - $1 })
            #expect(delta <= 2e-3, "\(name): update differs by \(delta)")
            checked += 1
        }
        // Running statistics: those of the pass at w + ε.
        for (name, t) in got where !trained.contains(name) && !name.hasSuffix(".velocity") {
            let e = Self.relative(t.floats.map(Double.init), atPerturbed[Autodiff.next(name)]!.f)
            #expect(e <= 1e-4, "\(name): \(e)")
        }
        #expect(checked == trained.count && checked > 10)
    }

    @Test("one LDAM SGD step of ResNet-32: the compiled step's updates equal the reference kernels' through the same graph")
    func resnet32Step() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../models/resnet32-cifar.kiln").standardized
        let model = try TextFormat.parse(String(contentsOf: url, encoding: .utf8)).materialized(seed: 21)
        let counts = [500, 300, 180, 108, 65, 39, 23, 14, 8, 5]
        let options = TrainingOptions(loss: .ldam(classCounts: counts, maxM: 0.5, scale: 30), momentum: 0.9, weightDecay: 2e-4)
        // Batch 2 on 2 threads splits each image over threads; batch 3 spreads images.
        #expect(try Self.compare(model, options: options, batch: 2, threads: 2, label: "resnet32 batch 2") > 60)
        // Every 3×3 stride-1 weight gradient (28 of the 31 convolutions: the stem has 3 input
        // channels, two are stride 2) ran as Winograd, so the comparison above covers it.
        let step = try TrainingStep(model: model, options: options, batch: 2, threads: 2)
        #expect(Self.weightGradAlgorithms(step).filter { $0.value == .winograd }.count == 28)
        try Self.compare(model, options: options, batch: 3, threads: 2, label: "resnet32 batch 3")
    }

    @Test("MaxNorm caps the Linear head's class vectors at the limit, keeps their directions and the shorter ones, and the next step computes with them")
    func maxNorm() throws {
        let model = try TextFormat.parse("""
            graph t {
              input x: f32[N, 5]
              param fw: f32[4, 5] = zeros
              param fb: f32[4] = zeros
              y = Gemm(x, fw, fb) {transB=1}
              output y
            }
            """).materialized(seed: 1)
        let step = try TrainingStep(model: model, options: TrainingOptions(momentum: 0, weightDecay: 0), batch: 3, threads: 2)
        #expect(step.classifierWeight?.name == "fw" && step.classifierWeight?.classMajor == true)
        // Rows of norm 3, 0.5, 2 and 1 (a 3-4-0-0-12 row has norm 13, scaled by 3/13).
        let base: [Float] = [3, 4, 0, 0, 12]
        let rows: [[Float]] = [base.map { $0 * 3 / 13 }, [0.5, 0, 0, 0, 0], [0, 0, 2, 0, 0], [0.6, 0.8, 0, 0, 0]]
        try step.load(["fw": TensorData(floats: rows.flatMap { $0 }, shape: [4, 5]), "fb": TensorData(floats: [0.1, -0.2, 0.3, 0], shape: [4])])
        try step.capClassNorms(limit: 1)
        let w = step.state()["fw"]!.floats
        // Expected by hand: row 0 → the 3-4-0-0-12 direction at norm 1, row 2 → (0, 0, 1, 0, 0).
        let expected: [[Float]] = [base.map { $0 / 13 }, rows[1], [0, 0, 1, 0, 0], rows[3]]
        for (a, b) in zip(w, expected.flatMap { $0 }) { #expect(abs(a - b) < 1e-6, "\(w)") }
        // The next step's logits (computed before its update) use the capped weights.
        let x: [Float] = [1, 2, 3, 4, 5, -1, 0, 1, 0, 2, 0.5, 0.5, -2, 1, 0]
        _ = try x.withUnsafeBufferPointer { try step.run(images: $0, labels: [0, 1, 2], classWeights: [1, 1, 1, 1], learningRate: 0) }
        let bias: [Float] = [0.1, -0.2, 0.3, 0]
        for i in 0..<3 {
            for j in 0..<4 {
                let z = (0..<5).map { x[i * 5 + $0] * expected[j][$0] }.reduce(0, +) + bias[j]
                #expect(abs(step.logits[i * 4 + j] - z) < 1e-5, "image \(i) class \(j)")
            }
        }
    }

    @Test("the packed weights follow SGD: a second step equals a fresh step loaded with the first's state")
    func packedWeightsFollowUpdates() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../models/resnet8-mnist.kiln").standardized
        let model = try TextFormat.parse(String(contentsOf: url, encoding: .utf8)).materialized(seed: 5)
        let options = TrainingOptions(momentum: 0.9, weightDecay: 5e-4)
        let batch = 4
        var rng = KilnRandom(seed: 6)
        let images = (0..<2 * batch * 28 * 28).map { _ in Float(rng.unit()) }, labels = [3, 1, 4, 1, 5, 9, 2, 6]
        func run(_ step: TrainingStep, _ k: Int) throws -> Float {
            try images.withUnsafeBufferPointer { all in
                try step.run(images: UnsafeBufferPointer(rebasing: all[(k * batch * 784)..<((k + 1) * batch * 784)]), labels: Array(labels[(k * batch)..<((k + 1) * batch)]),
                             classWeights: Array(repeating: 1, count: 10), learningRate: 0.5)
            }
        }
        let step = try TrainingStep(model: model, options: options, batch: batch, threads: 2, seed: 7)
        // Its convolutions read packed weights (direct and Winograd kernels).
        let packed = step.model.program.steps.filter { if case .conv(let c) = $0.kernel { return c.algorithm != .im2col && c.algorithm != .gemm1x1 }; return false }
        #expect(!packed.isEmpty)
        _ = try run(step, 0)
        let fresh = try TrainingStep(model: model, options: options, batch: batch, threads: 2, seed: 7)
        try fresh.load(step.state())
        let (second, again) = (try run(step, 1), try run(fresh, 1))
        #expect(second == again, "the second step's loss")
        let (a, b) = (step.state(), fresh.state())
        for (name, t) in a { #expect(t.floats == b[name]?.floats, "\(name) after two steps") }
    }

    /// The algorithm of every convolution weight gradient in a compiled step, by step name.
    static func weightGradAlgorithms(_ step: TrainingStep) -> [String: ConvAlgorithm] {
        var out: [String: ConvAlgorithm] = [:]
        for s in step.model.program.steps { if case .convGradWeight(let c) = s.kernel { out[s.name] = c.algorithm } }
        return out
    }

    static let stride1 = ("stride-1 convolutions with asymmetric pads, odd widths (Winograd weight gradient) and a 5×3 kernel (shifted-row weight gradient)", [2, 8, 9, 7], 3, """
        graph t {
          input x: f32[N, 8, 9, 7]
          param w1: f32[8, 8, 3, 3] = kaiming_normal(fan_in)
          param w2: f32[16, 8, 5, 3] = kaiming_normal(fan_in)
          param fw: f32[3, 16] = kaiming_uniform
          c1 = Conv(x, w1) {pads=[0, 2, 1, 0]}
          r1 = Relu(c1)
          c2 = Conv(r1, w2) {pads=[2, 1, 2, 1]}
          r2 = Relu(c2)
          g = GlobalAveragePool(r2)
          f = Flatten(g)
          y = Gemm(f, fw) {transB=1}
          output y
        }
        """)

    @Test("the backward kernels on the finite-difference graphs (strides, pads, dilation, pools, shortcuts), compiled against reference")
    func gradientGraphs() throws {
        for (label, shape, _, text) in GradientTests.cases + [Self.stride1] {
            let model = try TextFormat.parse(text).materialized(seed: 3)
            if label == Self.stride1.0 {
                let step = try TrainingStep(model: model, options: TrainingOptions(), batch: 2, threads: 2)
                #expect(Set(Self.weightGradAlgorithms(step).values) == [.winograd, .direct])
            }
            for batch in [shape[0], shape[0] + 1] {
                try Self.compare(model, options: TrainingOptions(momentum: 0.9, weightDecay: 1e-3, nesterov: true), batch: batch, threads: 2, label: "\(label), batch \(batch)")
            }
        }
    }
}
