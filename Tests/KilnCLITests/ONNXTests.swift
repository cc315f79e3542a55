import Foundation
import Graph
import ONNX
import Testing

/// The Python venv with onnx and onnxruntime that scripts/setup.sh creates.
let python: URL = {
    let venv = ProcessInfo.processInfo.environment["KILN_VENV"] ?? (NSHomeDirectory() + "/.cache/kiln/venv")
    return URL(fileURLWithPath: venv + "/bin/python")
}()

func scratch(_ name: String) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-tests-\(getpid())/\(name)")
    try? FileManager.default.removeItem(at: dir)
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

/// max |a − b| / max |b| over the tensor: error relative to the output's scale.
func relativeError(_ a: TensorData, _ b: TensorData) -> Double {
    var diff = 0.0, scale = 0.0
    for k in 0..<b.count {
        diff = max(diff, abs(a.double(at: k) - b.double(at: k)))
        scale = max(scale, abs(b.double(at: k)))
    }
    return scale == 0 ? diff : diff / scale
}

@Suite("ONNX export checked by onnx.checker and onnxruntime", .serialized)
struct ONNXExportTests {
    @Test("every model in models/, with seeded weights: onnxruntime's outputs equal kiln run --reference within 1e-4",
          arguments: [("resnet8-mnist", [2, 1, 28, 28]), ("resnet32-cifar", [2, 3, 32, 32]), ("resnet18", [1, 3, 224, 224]), ("resnet50", [1, 3, 224, 224])])
    func exportMatchesOnnxruntime(_ model: String, _ shape: [Int]) throws {
        try #require(FileManager.default.isExecutableFile(atPath: python.path), "no Python venv at \(python.path): run scripts/setup.sh")
        let dir = try scratch("export-\(model)")
        let onnx = dir.appendingPathComponent("\(model).onnx").path
        let c = try kiln("convert", "models/\(model).kiln", "-o", onnx, "--seed", "11")
        #expect(c.status == 0, "\(c.stderr)")
        // A deterministic input from a simple generator (values in [−1, 1)).
        var state: UInt32 = 2024
        let n = shape.reduce(1, *)
        let values = (0..<n).map { _ -> Float in state = state &* 1_664_525 &+ 1_013_904_223; return Float(state >> 8) / Float(1 << 23) - 1 }
        let input = dir.appendingPathComponent("input.npy").path
        try NPY.write(TensorData(floats: values, shape: shape), path: input)

        let ort = try run(python, [repositoryRoot.appendingPathComponent("scripts/ort_check.py").path, onnx, dir.appendingPathComponent("ort").path, "image=\(input)"])
        #expect(ort.status == 0, "onnxruntime / checker: \(ort.stderr)")
        #expect(ort.stdout.contains("opset 17, producer kiln, checker passed"))
        let k = try kiln("run", onnx, "--input", "image=\(input)", "--output", dir.appendingPathComponent("kiln").path, "--reference")
        #expect(k.status == 0, "\(k.stderr)")
        let name = model == "resnet8-mnist" || model == "resnet32-cifar" ? "linear" : "fc"
        let expected = try NPY.read(path: dir.appendingPathComponent("ort/\(name).npy").path)
        let got = try NPY.read(path: dir.appendingPathComponent("kiln/\(name).npy").path)
        #expect(got.shape == expected.shape)
        let err = relativeError(got, expected)
        #expect(err <= 1e-4, "max relative error \(err)")
    }

    @Test("an exported model imports back to the same graph")
    func reimport() throws {
        let dir = try scratch("reimport")
        let path = dir.appendingPathComponent("r8.onnx").path
        #expect(try kiln("convert", "models/resnet8-mnist.kiln", "-o", path, "--seed", "5").status == 0)
        let kilnPath = dir.appendingPathComponent("r8.kiln").path
        #expect(try kiln("convert", path, "-o", kilnPath).status == 0)
        let original = try TextFormat.parse(String(contentsOfFile: "\(repositoryRoot.path)/models/resnet8-mnist.kiln", encoding: .utf8))
        let back = try TextFormat.parse(String(contentsOfFile: kilnPath, encoding: .utf8))
        #expect(back.nodes == original.nodes)
        #expect(back.parameters.map(\.name) == original.parameters.map(\.name))
        #expect(back.metadata == original.metadata)
    }

    @Test("ReduceSum exports in opset 17's form (axes as an input), and onnxruntime computes the same sums")
    func reduceSumExport() throws {
        let dir = try scratch("reducesum")
        let g = try TextFormat.parse("""
            graph t {
              input x: f32[2, 3, 4]
              y = ReduceSum(x) {axes=[0, 2], keepdims=0}
              output y
            }
            """)
        let path = dir.appendingPathComponent("sum.onnx").path
        try ONNXExport.write(g, to: path)
        let x = TensorData(floats: (0..<24).map { Float($0) }, shape: [2, 3, 4])
        try NPY.write(x, path: dir.appendingPathComponent("x.npy").path)
        let script = """
            import sys, numpy as np, onnx, onnxruntime as ort
            m = onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True)
            y = ort.InferenceSession(sys.argv[1]).run(None, {"x": np.load(sys.argv[2])})[0]
            print(" ".join(str(int(v)) for v in y.ravel()))
            """
        let r = try run(python, ["-c", script, path, dir.appendingPathComponent("x.npy").path])
        #expect(r.status == 0, "\(r.stderr)")
        // By hand: Σ over n and w of n·12 + c·4 + w = 12·4 + 8·(4c) + 2·6 = 60 + 32c.
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "60 92 124")
    }

    @Test("ops ONNX added after opset 17 are a clear export error, naming the node, not an invalid file")
    func laterOpsetOps() throws {
        for (op, opset) in [("Gelu", 20), ("Mish", 18)] {
            let g = try TextFormat.parse("""
                graph t {
                  input x: f32[N, 4]
                  y = \(op)(x)
                  output y
                }
                """)
            #expect {
                _ = try ONNXExport.bytes(g)
            } throws: { error in
                "\(error)".contains("node 'y'") && "\(error)".contains("opset-\(opset) op; Kiln writes opset 17")
            }
        }
    }
}

@Suite("Malformed and hostile model and tensor files", .serialized)
struct HostileFileTests {
    @Test("the generated corpus: each file gives its one-line error and exit code 1")
    func pythonCorpus() throws {
        try #require(FileManager.default.isExecutableFile(atPath: python.path), "no Python venv at \(python.path): run scripts/setup.sh")
        let dir = try scratch("bad-onnx")
        let r = try run(python, [repositoryRoot.appendingPathComponent("scripts/make_bad_onnx.py").path, dir.path])
        try #require(r.status == 0, "\(r.stderr)")
        let lines = try String(contentsOf: dir.appendingPathComponent("expected.txt"), encoding: .utf8).split(separator: "\n")
        #expect(lines.count >= 20)
        for line in lines {
            let parts = line.split(separator: "\t", maxSplits: 1).map(String.init)
            let d = try kiln("dump", dir.appendingPathComponent(parts[0]).path)
            #expect(d.status == 1, "\(parts[0]) exited \(d.status)")
            #expect(d.stderr.contains(parts[1]), "\(parts[0]): \(d.stderr)")
            #expect(d.stderr.split(separator: "\n").count == 1, "\(parts[0]): \(d.stderr)")
        }
        // The good model in the same folder still loads.
        #expect(try kiln("dump", dir.appendingPathComponent("good.onnx").path).status == 0)
    }

    @Test("empty, random, truncated and bit-flipped ONNX files are errors, never crashes")
    func damagedBytes() throws {
        let dir = try scratch("damaged")
        let good = dir.appendingPathComponent("good.onnx").path
        #expect(try kiln("convert", "models/resnet8-mnist.kiln", "-o", good, "--seed", "1").status == 0)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: good)))
        var files: [(String, [UInt8])] = [("empty.onnx", [])]
        var state: UInt64 = 99
        func next() -> UInt64 { state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407; return state >> 33 }
        files.append(("random.onnx", (0..<5000).map { _ in UInt8(truncatingIfNeeded: next()) }))
        for cut in [1, 7, bytes.count / 3, bytes.count / 2, bytes.count - 3] { files.append(("cut\(cut).onnx", Array(bytes[..<cut]))) }
        for k in 0..<6 {
            var flipped = bytes
            for _ in 0..<8 { let i = Int(next() % UInt64(flipped.count)); flipped[i] ^= UInt8(1 << (next() % 8)) }
            files.append(("flip\(k).onnx", flipped))
        }
        for (name, content) in files {
            let path = dir.appendingPathComponent(name).path
            try Data(content).write(to: URL(fileURLWithPath: path))
            let r = try kiln("dump", path)
            // A flip may land in a weight and leave a valid model; anything else must be a clean error.
            #expect(r.status == 0 || (r.status == 1 && r.stderr.hasPrefix("kiln: error: ") && r.stderr.split(separator: "\n").count == 1),
                    "\(name): status \(r.status), \(r.stderr.prefix(300))")
            if name.hasPrefix("cut") || name == "empty.onnx" || name == "random.onnx" { #expect(r.status == 1, "\(name) loaded") }
        }
    }

    @Test("a chain of 20,000 nodes: parsed, verified, compiled and run without a recursive walk overflowing the stack")
    func deepChain() throws {
        var lines = ["graph chain {", "  input x: f32[N, 4]"]
        var previous = "x"
        for i in 0..<20_000 {
            lines.append("  v\(i) = \(i % 2 == 0 ? "Sigmoid" : "Relu")(\(previous))")
            previous = "v\(i)"
        }
        lines += ["  output \(previous)", "}"]
        let net = try temporaryFile("chain.kiln", lines.joined(separator: "\n"))
        let x = try temporaryFile("chain-x.npy", "")
        try NPY.write(TensorData(floats: [-3, 0, 0.5, 9, 1, 2, 3, 4], shape: [2, 4]), path: x)
        for mode in [[], ["--reference"]] {
            let r = try run(kilnBinary, ["run", net, "--input", x] + mode)
            #expect(r.status == 0, "\(mode): \(r.stderr.prefix(300))")
            // Sigmoid then Relu 10,000 times: every value converges to the fixed point of sigmoid, 0.659046.
            #expect(r.stdout.contains("0.659046"), "\(r.stdout)")
        }
    }

    @Test("bad tensor files and wrong input shapes in kiln run")
    func badTensors() throws {
        let dir = try scratch("bad-tensors")
        let ok = dir.appendingPathComponent("ok.npy").path
        try NPY.write(TensorData(floats: Array(repeating: 0.5, count: 784), shape: [1, 1, 28, 28]), path: ok)
        var cases: [(String, [UInt8], String)] = []
        let good = [UInt8](try Data(contentsOf: URL(fileURLWithPath: ok)))
        cases.append(("truncated.npy", Array(good.dropLast(10)), "data bytes, shape [1, 1, 28, 28] of f32 needs 3136"))
        cases.append(("notnpy.npy", Array("hello".utf8), "not a .npy file (bad magic)"))
        cases.append(("garbage.pb", [0xFF, 0xFF, 0xFF, 0xFF, 0x0F], "not a valid TensorProto"))
        var fortran = good
        if let r = String(decoding: fortran, as: UTF8.self).range(of: "False") {
            let offset = String(decoding: fortran, as: UTF8.self).utf8.distance(from: String(decoding: fortran, as: UTF8.self).startIndex, to: r.lowerBound)
            fortran.replaceSubrange(offset..<(offset + 5), with: Array("True ".utf8))
        }
        cases.append(("fortran.npy", fortran, "Fortran-order arrays are not supported"))
        // A header claiming a terabyte: refused from the header, before any allocation.
        var header = Array("{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }".utf8)
        while (10 + header.count + 1) % 64 != 0 { header.append(0x20) }
        header.append(0x0A)
        cases.append(("terabyte.npy", [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.count & 0xFF), UInt8(header.count >> 8)] + header,
                      "shape [1099511627776] is too large"))
        for (name, bytes, expected) in cases {
            let path = dir.appendingPathComponent(name).path
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let r = try kiln("run", "models/resnet8-mnist.kiln", "--input", "image=\(path)")
            #expect(r.status == 1)
            #expect(r.stderr.contains(expected), "\(name): \(r.stderr)")
        }
        let wrong = dir.appendingPathComponent("wrong.npy").path
        try NPY.write(TensorData(floats: Array(repeating: 0, count: 3 * 32 * 32), shape: [1, 3, 32, 32]), path: wrong)
        let r = try kiln("run", "models/resnet8-mnist.kiln", "--input", "image=\(wrong)")
        #expect(r.status == 1)
        #expect(r.stderr.contains("input 'image' must be f32[N, 1, 28, 28], got [1, 3, 32, 32]"), "\(r.stderr)")
        let missing = try kiln("run", "models/resnet8-mnist.kiln", "--input", "nope=\(ok)")
        #expect(missing.stderr.contains("the model has no input 'nope' (its inputs: image)"), "\(missing.stderr)")
    }
}

@Suite("ONNX opset conversions against onnxruntime", .serialized)
struct OpsetConversionTests {
    @Test("older and newer opset forms (Softmax-11, Clip/Pad/Slice/Squeeze attributes, ReduceMean-18, BatchNorm-7/9, Dropout-10, AveragePool-19, external data) give onnxruntime's outputs")
    func conversions() throws {
        try #require(FileManager.default.isExecutableFile(atPath: python.path), "no Python venv at \(python.path): run scripts/setup.sh")
        let dir = try scratch("opsets")
        let r = try run(python, [repositoryRoot.appendingPathComponent("scripts/make_opset_models.py").path, dir.path])
        try #require(r.status == 0, "\(r.stderr)")
        let models = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".onnx") }.sorted()
        #expect(models.count >= 19)
        for m in models {
            let base = dir.appendingPathComponent(String(m.dropLast(5))).path
            let out = base + ".kiln-out"
            let k = try kiln("run", dir.appendingPathComponent(m).path, "--input", "x=\(base).input.npy", "--output", out)
            #expect(k.status == 0, "\(m): \(k.stderr)")
            guard k.status == 0 else { continue }
            let want = try NPY.read(path: base + ".expected.npy"), got = try NPY.read(path: out + "/y.npy")
            #expect(got.shape == want.shape, "\(m)")
            #expect(allCloseProblem(got, want) == nil, "\(m): \(allCloseProblem(got, want) ?? "")")
        }
    }
}

/// numpy's allclose with rtol 1e-5, atol 1e-6, reporting the worst element.
func allCloseProblem(_ got: TensorData, _ want: TensorData) -> String? {
    guard got.shape == want.shape else { return "shape \(got.shape) vs \(want.shape)" }
    for k in 0..<want.count {
        let a = got.double(at: k), b = want.double(at: k)
        if abs(a - b) > 1e-6 + 1e-5 * abs(b) { return "element \(k): expected \(b), got \(a)" }
    }
    return nil
}

@Suite("Compiled path against the reference kernels", .serialized)
struct CompiledPathTests {
    @Test("every model in models/: the compiled program's outputs equal the reference within 1e-4",
          arguments: [("resnet8-mnist", [3, 1, 28, 28]), ("resnet32-cifar", [3, 3, 32, 32]), ("resnet18", [2, 3, 224, 224]), ("resnet50", [1, 3, 224, 224])])
    func models(_ model: String, _ shape: [Int]) throws {
        let dir = try scratch("compiled-\(model)")
        var state: UInt32 = 77
        let values = (0..<shape.reduce(1, *)).map { _ -> Float in state = state &* 1_664_525 &+ 1_013_904_223; return Float(state >> 8) / Float(1 << 23) - 1 }
        let input = dir.appendingPathComponent("input.npy").path
        try NPY.write(TensorData(floats: values, shape: shape), path: input)
        for (mode, args) in [("compiled", ["--threads", "2"]), ("reference", ["--reference"])] {
            let r = try run(kilnBinary, ["run", "models/\(model).kiln", "--seed", "9", "--input", "image=\(input)",
                                          "--output", dir.appendingPathComponent(mode).path] + args)
            #expect(r.status == 0, "\(mode): \(r.stderr)")
        }
        let name = model == "resnet8-mnist" || model == "resnet32-cifar" ? "linear" : "fc"
        let compiled = try NPY.read(path: dir.appendingPathComponent("compiled/\(name).npy").path)
        let reference = try NPY.read(path: dir.appendingPathComponent("reference/\(name).npy").path)
        let err = relativeError(compiled, reference)
        #expect(err <= 1e-4, "max relative error \(err)")
    }

    @Test("dump --train shows the training step: LDAM loss, backward ops, SGD; after each pass and as a program")
    func trainingDumps() throws {
        let counts = "500,300,180,108,65,39,23,14,8,5"
        let t = try kiln("dump", "models/resnet8-mnist.kiln", "--train", "--loss", "ldam", "--class-counts", counts)
        #expect(t.status == 0, "\(t.stderr)")
        for s in ["kiln.NormedLinear(", "kiln.LDAMLoss(linear, labels, class_weights) {class_counts=[500, 300, 180, 108, 65, 39, 23, 14, 8, 5]",
                  "kiln.BatchNormTraining(", "kiln.ConvGradData(", "kiln.ConvGradWeight(", "kiln.SliceGrad(", "kiln.PadGrad(",
                  "= kiln.SGD(conv1.weight, conv1.weight.grad", "input lr: f32[]", "output loss: f32[]"] {
            #expect(t.stdout.contains(s), "missing \(s)")
        }
        let all = try kiln("dump", "models/resnet8-mnist.kiln", "--train", "--after", "all")
        #expect(all.status == 0, "\(all.stderr)")
        #expect(all.stdout.contains("# after select-algorithms: "))
        let p = try kiln("dump", "models/resnet8-mnist.kiln", "--train", "--program", "--batch", "4")
        #expect(p.status == 0, "\(p.stderr)")
        #expect(p.stdout.hasPrefix("program: batch 4, "))
        #expect(p.stdout.contains("kiln.SGD 'conv1.weight.sgd'"))
        let bad = try kiln("dump", "models/resnet8-mnist.kiln", "--train", "--loss", "ldam")
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("--loss ldam needs --class-counts"))
    }

    @Test("dump --program lists kernels with algorithms and arena offsets; --after shows fused chains")
    func dumps() throws {
        // The built-in rule's choices (--no-tune): stride 2 → im2col; 3×3 stride 1 from 16 input
        // channels → Winograd; the 3-channel stem → direct.
        let p = try kiln("dump", "models/resnet32-cifar.kiln", "--program", "--batch", "4", "--no-tune")
        #expect(p.status == 0, "\(p.stderr)")
        #expect(p.stdout.hasPrefix("program: batch 4, 37 steps, arena "))
        #expect(p.stdout.contains("conv/im2col kiln.FusedConv 'layer2.0.conv1' layout NCHW"))
        #expect(p.stdout.contains("conv/winograd_f2x3 kiln.FusedConv 'layer2.0.conv2' layout NCHW"))
        #expect(p.stdout.contains("conv/winograd_f2x3 kiln.FusedConv 'layer1.0.conv1' layout NCHW"))
        #expect(p.stdout.contains("conv/direct_shift kiln.FusedConv 'conv1' layout NCHW"))
        let a = try kiln("dump", "models/resnet32-cifar.kiln", "--after", "fuse-epilogues")
        #expect(a.stdout.contains("layer1.0.relu2: f32[N, 16, 32, 32] = kiln.FusedConv[Conv→Add→Relu](layer1.0.relu1, layer1.0.conv2.weight.folded, layer1.0.conv2.bias.folded, relu)"), "\(a.stdout.prefix(200))")
        let all = try kiln("dump", "models/resnet8-mnist.kiln", "--after", "all")
        for pass in ["dce", "identity", "fold-constants", "fold-bn", "fuse-epilogues", "select-algorithms"] {
            #expect(all.stdout.contains("# after \(pass): "))
        }
    }
}

@Suite("Transformer-path patterns against onnxruntime", .serialized)
struct TransformerPatternTests {
    @Test("decomposed GELU and LayerNorm, MatMul epilogues, attention, Expand/Concat/Tile/Split, activations, Einsum, reductions, normalisations, Resize, depthwise and grouped convolutions and SiLU run compiled, none on reference kernels, with onnxruntime's outputs")
    func patterns() throws {
        try #require(FileManager.default.isExecutableFile(atPath: python.path), "no Python venv at \(python.path): run scripts/setup.sh")
        let dir = try scratch("patterns")
        let r = try run(python, [repositoryRoot.appendingPathComponent("scripts/make_pattern_models.py").path, dir.path])
        try #require(r.status == 0, "\(r.stderr)")
        // What each program must show (the fusions took the pattern).
        let kernels: [String: [String]] = [
            "mlp_gelu_div": ["linear/packed kiln.FusedMatMul 'MatMul_1'", "linear/packed kiln.FusedMatMul 'MatMul_8'"],
            "mlp_gelu_mul": ["linear/packed kiln.FusedMatMul 'MatMul_1'"],
            // q's scale folded into the product; product, softmax and product by v one step;
            // q, k and v views of the transposed projection (the Split is no step).
            "attention": ["program: batch 2, 5 steps", "attention×4 kiln.MatMulTransB+Softmax+MatMul", "linear/packed kiln.FusedMatMul"],
            // The probabilities read twice: the softmax on the product's rows, the product by v apart.
            "attention_long": ["attention×6 kiln.MatMulTransB+Softmax+MatMul 'MatMul_8'", "program: batch 2, 4 steps"],
            // Gathers of constant indices are views (no step); the last one updated in place.
            "slices": ["program: batch 2, 5 steps", "elementwise-chain kiln.FusedElementwise 'Sigmoid_9'"],
            "attention_probs": ["matmul/batched×4+softmax kiln.MatMulTransB+Softmax", "matmul/batched×4 MatMul", "reduce ReduceMax"],
            // The class token's Expand reads a weight only: folded (weights are constants here).
            "cls_token": ["concat Concat", "binary Add"],
            "tile_split": ["gather-map Tile", "split Split", "gather-map Expand"],
            "activations": ["elementwise-chain kiln.FusedElementwise 'Erf_0'", "activation Gelu", "linear/packed kiln.FusedMatMul"],
            "reductions": ["reduce ReduceL2", "softmax Softmax", "groupnorm InstanceNormalization", "reduce ReduceMean", "reduce ReduceMax",
                           "binary Add 'Add_4'", "linear/packed MatMul"],
            "groupnorm": ["groupnorm GroupNormalization", "softmax LogSoftmax"],
            "layernorm_decomposed": ["layernorm LayerNormalization 'ReduceMean_0'"],
            "resize": ["gather-map Resize 'Resize_0'", "gather-map Resize 'Resize_1'"],
            "depthwise": ["conv/depthwise kiln.FusedConv 'Conv_2'", "conv/depthwise kiln.FusedConv 'Conv_6'", "conv/depthwise kiln.FusedConv 'Conv_8'"],
            // Both 1×1 expansions made band by band inside their depthwise step.
            "expand_depthwise": ["conv/gemm_1x1→next kiln.FusedConv 'Conv_0'", "conv/1x1+depthwise kiln.FusedConv+kiln.FusedConv 'Conv_2'",
                                 "conv/gemm_1x1→next kiln.FusedConv 'Conv_6'", "conv/1x1+depthwise kiln.FusedConv+kiln.FusedConv 'Conv_8'"],
            "expand_depthwise_b1": ["conv/1x1+depthwise kiln.FusedConv+kiln.FusedConv 'Conv_2'", "conv/1x1+depthwise kiln.FusedConv+kiln.FusedConv 'Conv_8'"],
            // (At batch 1, as the names ending in _b1 are dumped.) The branches written into the
            // first join; the join with the graph's input stays a step.
            "concat_b1": ["program: batch 1, 4 steps", "concat Concat 'Concat_5'"],
            // Both SiLUs fused (into the two convolutions' epilogues): five steps in all.
            "swish": ["program: batch 2, 5 steps", "conv/gemm_1x1 kiln.FusedConv 'Conv_0'", "conv/depthwise kiln.FusedConv 'Conv_3'",
                      "elementwise-chain kiln.FusedElementwise 'Mul_9'"],
            // Output channels past the last block of 8 on the packed kernel too.
            "remainder": ["conv/gemm_1x1 kiln.FusedConv 'Conv_0'", "conv/im2col kiln.FusedConv 'Conv_3'", "conv/gemm_1x1 kiln.FusedConv 'Conv_5'"],
            "remainder_b1": ["conv/gemm_1x1 kiln.FusedConv 'Conv_0'", "conv/im2col kiln.FusedConv 'Conv_3'", "conv/gemm_1x1 kiln.FusedConv 'Conv_5'"],
            // The gate's product folded into the projection (its residual too): no Mul step.
            "se_gate": ["conv/gate+gemm_1x1 Mul+kiln.FusedConv 'Mul_7'"],
            "se_gate_b1": ["conv/gate+gemm_1x1 Mul+kiln.FusedConv 'Mul_7'"],
            "grouped": ["conv/direct_shift kiln.FusedConv 'Conv_0'", "conv/direct_shift kiln.FusedConv 'Conv_2'", "conv/im2col kiln.FusedConv 'Conv_3'"],
            "grouped_b1": ["conv/direct_shift kiln.FusedConv 'Conv_1'", "conv/direct_shift kiln.FusedConv 'Conv_4'"],
            "einsum": ["attention×4 kiln.MatMulTransB+Softmax+MatMul 'Einsum_1'", "linear/packed MatMul 'Einsum_4.product'", "gather-map Transpose 'Einsum_4'"],
        ]
        let models = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".onnx") }.sorted()
        #expect(models.count == kernels.count)
        for m in models {
            let name = String(m.dropLast(5)), base = dir.appendingPathComponent(name).path, out = base + ".kiln-out"
            let k = try kiln("run", dir.appendingPathComponent(m).path, "--input", "x=\(base).input.npy", "--output", out)
            #expect(k.status == 0, "\(m): \(k.stderr)")
            guard k.status == 0 else { continue }
            let want = try NPY.read(path: base + ".expected.npy"), got = try NPY.read(path: out + "/y.npy")
            #expect(allCloseProblem(got, want) == nil, "\(m): \(allCloseProblem(got, want) ?? "")")
            // The built-in rule's choices (the run above tunes, unless KILN_TUNE=0).
            let program = try kiln("dump", dir.appendingPathComponent(m).path, "--program", "--batch", name.hasSuffix("_b1") ? "1" : "2", "--no-tune")
            #expect(program.status == 0, "\(m): \(program.stderr)")
            #expect(!program.stdout.contains(": reference "), "\(m) runs a step on a reference kernel:\n\(program.stdout)")
            for s in kernels[name] ?? [] { #expect(program.stdout.contains(s), "\(m): no \(s) in\n\(program.stdout)") }
            if name == "attention" { #expect(!program.stdout.contains("binary Mul"), "attention: q's scale not folded into the product:\n\(program.stdout)") }
            if name == "slices" { #expect(!program.stdout.contains("Gather"), "slices: a Gather copied:\n\(program.stdout)") }
            if name.hasPrefix("se_gate") { #expect(!program.stdout.contains("binary Mul"), "\(m): the gate's product made:\n\(program.stdout)") }
            if name == "concat_b1" { #expect(!program.stdout.contains("Concat_3"), "concat_b1: the branches copied into the join:\n\(program.stdout)") }
            if name.hasPrefix("attention") { #expect(!program.stdout.contains("split Split"), "\(m): q, k and v copied out:\n\(program.stdout)") }
            if name.hasPrefix("mlp") { #expect(!program.stdout.contains("elementwise-chain"), "\(m): GELU not fused into the MatMul") }
        }
    }
}
