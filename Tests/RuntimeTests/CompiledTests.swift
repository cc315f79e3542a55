import Compiler
import Graph
import Runtime
import Testing

/// The compiled path against the reference kernels (the oracle) on small graphs that
/// exercise each fusion and kernel family.
@Suite("Compiled programs")
struct CompiledTests {
    func random(_ shape: [Int], seed: UInt64) -> TensorData {
        var r = KilnRandom(seed: seed)
        return TensorData(floats: (0..<shape.reduce(1, *)).map { _ in Float(r.normal()) }, shape: shape)
    }

    func maxRelativeError(_ a: TensorData, _ b: TensorData) -> Double {
        var d = 0.0, s = 0.0
        for k in 0..<a.count { d = max(d, abs(a.double(at: k) - b.double(at: k))); s = max(s, abs(b.double(at: k))) }
        return d / max(s, 1e-30)
    }

    static let cases: [(String, String)] = [
        ("conv epilogue, residual, pools", """
            graph t {
              input x: f32[N, 8, 9, 9]
              param w1: f32[16, 8, 3, 3] = kaiming_normal(fan_in)
              param b1: f32[16] = uniform(-0.5, 0.5)
              param w2: f32[16, 16, 3, 3] = kaiming_normal(fan_in)
              param w3: f32[16, 8, 1, 1] = kaiming_normal(fan_in)
              param w4: f32[16, 8, 3, 3] = kaiming_normal(fan_in)
              c1 = Conv(x, w1, b1) {pads=[1, 1, 1, 1]}
              r1 = Relu(c1)
              c2 = Conv(r1, w2) {pads=[1, 1, 1, 1]}
              c3 = Conv(x, w3)
              s = Add(c2, c3)
              r2 = LeakyRelu(s) {alpha=0.2}
              c4 = Conv(x, w4) {strides=[2, 2], pads=[0, 1, 2, 1]}
              m = MaxPool(r2) {kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]}
              a = AveragePool(r2) {kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1, count_include_pad=1}
              g = GlobalAveragePool(c4)
              output m
              output a
              output g
            }
            """),
        ("winograd: odd sizes, asymmetric pads, rows wider than one vector, residual and leaky relu", """
            graph t {
              input x: f32[N, 16, 7, 35]
              param w1: f32[24, 16, 3, 3] = kaiming_normal(fan_in)
              param b1: f32[24] = uniform(-0.5, 0.5)
              param w2: f32[24, 16, 1, 1] = kaiming_normal(fan_in)
              param w3: f32[32, 24, 3, 3] = kaiming_normal(fan_in)
              c1 = Conv(x, w1, b1) {pads=[1, 2, 1, 0]}
              c2 = Conv(x, w2)
              s = Add(c1, c2)
              h = LeakyRelu(s) {alpha=0.1}
              c3 = Conv(h, w3) {pads=[0, 1, 2, 1]}
              output h
              output c3
            }
            """),
        ("batch norm folding and gemm epilogue", """
            graph t {
              input x: f32[N, 4, 6, 6]
              param w: f32[8, 4, 3, 3] = kaiming_normal(fan_in)
              param g: f32[8] = uniform(0.5, 1.5)
              param b: f32[8] = uniform(-0.2, 0.2)
              buffer m: f32[8] = uniform(-0.1, 0.1)
              buffer v: f32[8] = uniform(0.5, 2.0)
              param fw: f32[5, 72] = kaiming_uniform
              param fb: f32[5] = fan_in_uniform(72)
              const shape: i64[2] = [0, -1]
              c = Conv(x, w) {strides=[2, 2], pads=[1, 1, 1, 1]}
              n = BatchNormalization(c, g, b, m, v)
              h = HardSwish(n)
              f = Reshape(h, shape)
              y = Gemm(f, fw, fb) {transB=1}
              z = Sigmoid(y)
              s = Softmax(z)
              output s
            }
            """),
        ("shortcut data movement and concat", """
            graph t {
              input x: f32[N, 4, 8, 8]
              const st: i64[2] = [0, 0]
              const en: i64[2] = [9223372036854775807, 9223372036854775807]
              const ax: i64[2] = [2, 3]
              const sp: i64[2] = [2, 2]
              const pads: i64[8] = [0, 2, 0, 0, 0, 2, 0, 0]
              s = Slice(x, st, en, ax, sp)
              p = Pad(s, pads)
              t = Transpose(p) {perm=[0, 2, 3, 1]}
              q = Concat(t, t) {axis=-1}
              output q
            }
            """),
        ("im2col in panels of output rows: stride 2, dilation, asymmetric pads, six panels with a partial last, residual and relu", """
            graph t {
              input x: f32[N, 32, 61, 75]
              param w1: f32[8, 32, 3, 3] = kaiming_normal(fan_in)
              param b1: f32[8] = uniform(-0.5, 0.5)
              param w2: f32[16, 32, 3, 3] = kaiming_normal(fan_in)
              param w3: f32[16, 8, 3, 3] = kaiming_normal(fan_in)
              c1 = Conv(x, w1, b1) {strides=[2, 2], pads=[1, 0, 2, 1], dilations=[1, 2]}
              c2 = Conv(x, w2) {strides=[2, 2], pads=[1, 0, 2, 1], dilations=[1, 2]}
              c3 = Conv(c1, w3) {pads=[2, 1, 2, 1], strides=[1, 1], dilations=[2, 1]}
              s = Add(c3, c2)
              y = Relu(s)
              output y
            }
            """),
        ("winograd on short rows (channels-last inside): odd sizes, asymmetric pads, 24 and 40 channels, residual and leaky relu", """
            graph t {
              input x: f32[N, 16, 9, 11]
              param w1: f32[24, 16, 3, 3] = kaiming_normal(fan_in)
              param b1: f32[24] = uniform(-0.5, 0.5)
              param w2: f32[24, 16, 1, 1] = kaiming_normal(fan_in)
              param w3: f32[40, 24, 3, 3] = kaiming_normal(fan_in)
              c1 = Conv(x, w1, b1) {pads=[1, 1, 2, 1]}
              c2 = Conv(x, w2) {pads=[1, 0, 0, 0]}
              s = Add(c1, c2)
              h = LeakyRelu(s) {alpha=0.1}
              c3 = Conv(h, w3) {pads=[0, 2, 1, 1]}
              output h
              output c3
            }
            """),
    ]

    @Test("compiled outputs equal the reference kernels' (max relative error ≤ 1e-4)", arguments: [1, 3])
    func matchesReference(batch: Int) throws {
        for (label, text) in Self.cases {
            let g = try TextFormat.parse(text).materialized(seed: 5)
            let x = g.inputs[0]
            let shape = [batch] + x.type.shape.dropFirst().map { $0.value! }
            let inputs = [x.name: random(shape, seed: 8)]
            let reference = try ReferenceExecutor.run(g, inputs: inputs)
            for threads in [1, 2] {
                let compiled = try CompiledModel.compile(g, batch: batch, threads: threads).run(inputs)
                for (name, want) in reference {
                    let got = try #require(compiled[name])
                    #expect(got.shape == want.shape, "\(label) \(name)")
                    #expect(maxRelativeError(got, want) <= 1e-4, "\(label): \(name), batch \(batch), \(threads) threads: \(maxRelativeError(got, want))")
                }
            }
        }
    }

    @Test("a batch run in chunks per thread (30 images: each thread 15 in three chunks of 4 and a partial one) equals the reference kernels' outputs on ResNet-8")
    func chunked() throws {
        let g = try ModelZoo.model(named: "resnet8-mnist")!.materialized(seed: 6)
        let x = random([30, 1, 28, 28], seed: 9)
        let reference = try ReferenceExecutor.run(g, inputs: [g.inputs[0].name: x])[g.outputs[0].name]!
        let m = try ChunkedModel(graph: g, batch: 30, chunk: 4, threads: 2)
        _ = m.inputBuffer(g.inputs[0].name)!.update(fromContentsOf: x.floats)
        try m.execute()
        let got = TensorData(floats: Array(m.outputBuffer(g.outputs[0].name)!), shape: [30, 10])
        #expect(maxRelativeError(got, reference) <= 1e-4, "\(maxRelativeError(got, reference))")
        // Each image's row is its own: image 29 (in the partial chunk) alone gives the same row.
        let single = try ReferenceExecutor.run(g, inputs: [g.inputs[0].name: TensorData(floats: Array(x.floats[(29 * 784)...]), shape: [1, 1, 28, 28])])
        let row29 = TensorData(floats: Array(got.floats[290...]), shape: [1, 10])
        #expect(maxRelativeError(row29, single[g.outputs[0].name]!) <= 1e-4)
        // forThroughput picks chunks for ResNet-32 at batch 128 on 2 threads, one program at batch 1.
        let r32 = try ModelZoo.model(named: "resnet32-cifar")!.materialized(seed: 1)
        #expect(try CompiledModel.forThroughput(r32, batch: 128, threads: 2) is ChunkedModel)
        #expect(try CompiledModel.forThroughput(r32, batch: 1, threads: 2) is CompiledModel)
    }

    @Test("executing again on the same input gives the same output: the input's storage is never reused", arguments: [1, 3])
    func inputsStayIntact(batch: Int) throws {
        let g = try ModelZoo.model(named: "resnet32-cifar")!.materialized(seed: 2)
        let m = try CompiledModel.compile(g, batch: batch, threads: 2)
        let x = random([batch, 3, 32, 32], seed: 4)
        _ = m.inputBuffer(g.inputs[0].name)!.update(fromContentsOf: x.floats)
        try m.execute()
        let intact = Array(m.inputBuffer(g.inputs[0].name)!) == x.floats
        #expect(intact, "execute() changed its input")
        let first = Array(m.outputBuffer(g.outputs[0].name)!)
        try m.execute()
        let same = Array(m.outputBuffer(g.outputs[0].name)!) == first
        #expect(same, "a second execute() on the same input gave another output")
    }

    @Test("no two storages live at one step overlap in the arena (ResNet-32 inference at batch 1 and 8, ResNet-8's training step)")
    func arenaDisjoint() throws {
        let r32 = try ModelZoo.model(named: "resnet32-cifar")!.materialized(seed: 0)
        var programs = try [1, 8].map { try CompiledModel.compile(r32, batch: $0, threads: 1).program }
        let r8 = try ModelZoo.model(named: "resnet8-mnist")!.materialized(seed: 0)
        programs.append(try TrainingStep(model: r8, options: TrainingOptions(), batch: 4, threads: 1).model.program)
        for p in programs {
            #expect(p.storages.count > 10)
            var clashes = 0
            for (i, a) in p.storages.enumerated() {
                #expect(a.byteOffset % 64 == 0 && a.byteOffset + a.bytes <= p.arenaBytes)
                for b in p.storages[(i + 1)...] where a.firstStep <= b.lastStep && b.firstStep <= a.lastStep {
                    if a.byteOffset < b.byteOffset + b.bytes && b.byteOffset < a.byteOffset + a.bytes { clashes += 1 }
                }
            }
            #expect(clashes == 0, "batch \(p.batch): \(clashes) overlapping pairs")
            // Every step's arena tensors lie inside storages live at that step.
            for (k, step) in p.steps.enumerated() {
                for t in step.outputs + step.inputs.compactMap(\.tensor) where !t.inParameters {
                    let home = p.storages.contains { $0.firstStep <= k && k <= $0.lastStep && $0.byteOffset <= t.byteOffset
                                                     && t.byteOffset + t.byteCount <= $0.byteOffset + $0.bytes }
                    #expect(home, "step \(k) '\(step.name)': a tensor outside every live storage")
                }
            }
        }
    }

    @Test("the fused ops' reference kernels equal the unfused graph's, and a 1-D convolution compiles")
    func fusedReference() throws {
        let g = try ModelZoo.model(named: "resnet8-mnist")!.materialized(seed: 3)
        let fused = try Pipeline.run(g, passes: Pass.inferencePipeline)
        #expect(fused.nodes.contains { $0.op == "FusedConv" })
        let x = HostTensor(random([2, 1, 28, 28], seed: 4))
        let want = try ReferenceExecutor.evaluate(g, inputs: [g.inputs[0].name: x])[g.outputs[0].name]!
        let got = try ReferenceExecutor.evaluate(fused, inputs: [g.inputs[0].name: x])[g.outputs[0].name]!
        // (BatchNorm folded into the weights in f32 moves the values by a few ulps of f32.)
        let worst = zip(got.f, want.f).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
        #expect(worst <= 1e-5, "\(worst)")
        let chain = try TextFormat.parse("""
            graph t {
              input x: f32[N, 4, 6]
              param s: f32[4, 1] = uniform(0.5, 1.5)
              param o: f32[4, 6] = uniform(-1, 1)
              a = Mul(x, s)
              b = Sub(o, a)
              c = LeakyRelu(b) {alpha=0.3}
              output c
            }
            """).materialized(seed: 1)
        let chained = try Pipeline.run(chain, passes: Pass.inferencePipeline)
        #expect(chained.nodes.map(\.op) == ["FusedElementwise"])
        let y = HostTensor(random([3, 4, 6], seed: 5))
        let c0 = try ReferenceExecutor.evaluate(chain, inputs: ["x": y])["c"]!, c1 = try ReferenceExecutor.evaluate(chained, inputs: ["x": y])["c"]!
        #expect(c0 == c1)
        // A 1-D convolution with a fused epilogue: the compiled program runs it through the
        // reference kernel of kiln.FusedConv.
        let conv1d = try TextFormat.parse("""
            graph t {
              input x: f32[N, 2, 9]
              param w: f32[3, 2, 3] = kaiming_normal(fan_in)
              param b: f32[3] = uniform(-0.5, 0.5)
              c = Conv(x, w, b) {pads=[1, 1]}
              r = Relu(c)
              output r
            }
            """).materialized(seed: 2)
        let z = random([2, 2, 9], seed: 6)
        let reference = try ReferenceExecutor.run(conv1d, inputs: ["x": z])["r"]!
        let compiled = try CompiledModel.compile(conv1d, batch: 2, threads: 1).run(["x": z])["r"]!
        #expect(maxRelativeError(compiled, reference) <= 1e-6)
    }

    @Test("refreshing a compiled model with new weights equals compiling them (BatchNorm folded, packed Winograd and direct weights, chunks)")
    func refresh() throws {
        let first = try ModelZoo.model(named: "resnet32-cifar")!.materialized(seed: 1)
        var second = try ModelZoo.model(named: "resnet32-cifar")!.materialized(seed: 2)
        // Moved running statistics too, so the folded weights differ from the first model's.
        for i in second.parameters.indices where second.parameters[i].name.hasSuffix("running_var") {
            let t = second.parameters[i].initializer.tensor!
            second.parameters[i].initializer = .data(TensorData(floats: t.floats.map { $0 * 1.7 + 0.1 }, shape: t.shape))
        }
        let x = random([12, 3, 32, 32], seed: 7)
        for (batch, chunk) in [(3, nil), (12, 2)] as [(Int, Int?)] {
            let options = CompileOptions(chunk: chunk)
            let refreshed = try CompiledModel.forThroughput(first, batch: batch, threads: 2, options: options)
            let fresh = try CompiledModel.forThroughput(second, batch: batch, threads: 2, options: options)
            #expect((refreshed is ChunkedModel) == (chunk != nil))
            try refreshed.refresh(values: second)
            var outputs: [[Float]] = []
            for m in [refreshed, fresh] {
                _ = m.inputBuffer(first.inputs[0].name)!.update(fromContentsOf: x.floats[..<(batch * 3 * 32 * 32)])
                try m.execute()
                outputs.append(Array(m.outputBuffer(first.outputs[0].name)!))
            }
            #expect(outputs[0] == outputs[1], "batch \(batch): the refreshed model differs from a fresh compile")
        }
        var other = first
        other.parameters.removeLast()
        #expect(throws: (any Error).self) { try CompiledModel.compile(first, batch: 1, threads: 1).refresh(values: other) }
    }

    @Test("3×3 stride-1 convolutions from 16 input channels run as Winograd, with the residual and activation fused")
    func winogradChosen() throws {
        let g = try TextFormat.parse(Self.cases[1].1).materialized(seed: 5)
        // The built-in rule's choice (tuning might measure another faster here).
        let m = try CompiledModel.compile(g, batch: 1, threads: 2, options: CompileOptions())
        var seen: [String: Int] = [:]
        for step in m.program.steps {
            guard case .conv(let c) = step.kernel else { continue }
            if c.algorithm == .winograd { seen[step.name] = step.inputs.count }
        }
        #expect(seen.keys.sorted() == ["c1", "c3"])
        #expect(seen["c1"] == 4)  // x, w, bias, residual
        // The short-row case too (its compiled outputs are checked against the reference above).
        let short = try CompiledModel.compile(try TextFormat.parse(Self.cases.last!.1).materialized(seed: 5), batch: 1, threads: 2,
                                              options: CompileOptions())
        #expect(short.program.steps.filter { if case .conv(let c) = $0.kernel { c.algorithm == .winograd } else { false } }.count == 2)
    }

    @Test("the program cache compiles once per batch size")
    func cache() throws {
        let g = try TextFormat.parse(Self.cases[0].1).materialized(seed: 1)
        let cache = ProgramCache(graph: g, threads: 1)
        let a = try cache.model(batch: 4), b = try cache.model(batch: 4), c = try cache.model(batch: 2)
        #expect(a === b)
        #expect(a !== c)
        #expect(cache.compiledBatchSizes == [2, 4])
    }

    @Test("the arena reuses memory: ResNet-32 needs three of its largest activations at a time")
    func arenaReuse() throws {
        let g = try #require(try ModelZoo.model(named: "resnet32-cifar")).materialized(seed: 0)
        let m = try CompiledModel.compile(g, batch: 8, threads: 1)
        // A residual block holds its input (the shortcut), the first conv's output and the
        // second's at once: 3 × 8·16·32·32 floats at most, far below the sum of all outputs —
        // plus the graph input 8·3·32·32, which stays intact through the program.
        #expect(m.program.arenaBytes <= 4 * (3 * 8 * 16 * 32 * 32 + 8 * 3 * 32 * 32))
        #expect(m.program.arenaBytes < m.graph.stats(batch: 8).activationBytes / 5)
    }
}
