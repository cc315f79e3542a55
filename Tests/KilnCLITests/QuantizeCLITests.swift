import Foundation
import CKernels
import Graph
import Testing

/// `kiln quantize` as a user runs it: odd calibration folders, bad options, and what it writes.
@Suite("kiln quantize: calibration folders, options, the QDQ model", .serialized)
struct QuantizeCLITests {
    @Test("a folder with 20 bad entries among 100 images: the bad ones skipped and named, the model written, exit code 2")
    func badCalibrationFiles() throws {
        let dir = try scratch("quantize-bad-folder")
        let images = dir.appendingPathComponent("images").path
        let made = try run(python, [repositoryRoot.appendingPathComponent("scripts/bad_folder.py").path, images])
        try #require(made.status == 0, "\(made.stderr)")
        let out = dir.appendingPathComponent("q.onnx").path
        let r = try kiln("quantize", "models/resnet8-mnist.kiln", "--calibrate", images, "-o", out, "--images", "1000", "--batch", "8")
        #expect(r.status == 2, "\(r.stderr)")
        #expect(!r.stderr.contains("Fatal error"))
        let skipped = r.stderr.split(separator: "\n").filter { $0.hasPrefix("kiln: skipped ") }
        // The bad entries the listing reports itself (links) are not calibration candidates;
        // every other bad file is tried and named.
        #expect(skipped.count >= 15 && skipped.count <= 20, "\(r.stderr)")
        #expect(r.stderr.contains("calibrated on 100 images (min/max)"), "\(r.stderr)")
        // The model: QDQ pairs, int8 weights, and it runs.
        let dump = try kiln("dump", out)
        #expect(dump.status == 0, "\(dump.stderr)")
        #expect(dump.stdout.contains("QuantizeLinear(") && dump.stdout.contains("DequantizeLinear("))
        #expect(dump.stdout.contains(": i8[16, 1, 3, 3]"), "the first convolution's weight in int8")
        #expect(dump.stdout.contains("meta \"kiln.quantization\" = \"int8 QDQ: activations uint8 asymmetric per tensor (min/max), weights int8 symmetric per channel in 7 bits, biases int32\""))
        let program = try kiln("dump", out, "--program", "--batch", "1")
        #expect(program.status == 0, "\(program.stderr)")
        #expect(!program.stdout.contains("reference"), "every step compiled:\n\(program.stdout)")
    }

    @Test("bad options and empty folders are one-line errors and write nothing")
    func errors() throws {
        let dir = try scratch("quantize-errors")
        let empty = dir.appendingPathComponent("empty").path
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let images = repositoryRoot.appendingPathComponent("data").path
        let out = dir.appendingPathComponent("q.onnx").path
        let cases: [([String], String)] = [
            (["--calibrate", empty, "-o", out], "no PNG or JPEG images to calibrate with"),
            (["--calibrate", dir.appendingPathComponent("missing").path, "-o", out], "missing"),
            (["--calibrate", empty, "-o", dir.appendingPathComponent("q.txt").path], "the output must be an .onnx file"),
            (["--calibrate", empty, "-o", out, "--method", "entropy"], "--method must be minmax or percentile, got 'entropy'"),
            (["--calibrate", empty, "-o", out, "--method", "percentile", "--percentile", "30"], "--percentile must be in (50, 100], got 30.0"),
            (["--calibrate", empty, "-o", out, "--activations", "u16"], "--activations must be u8 or i8, got 'u16'"),
            (["--calibrate", empty, "-o", out, "--weight-bits", "4"], "--weight-bits must be 7 or 8, got 4"),
            (["--calibrate", images, "-o", out, "--images", "0"], "--images must be at least 1"),
        ]
        for (arguments, message) in cases {
            let r = try run(kilnBinary, ["quantize", "models/resnet8-mnist.kiln"] + arguments)
            #expect(r.status == 1, "\(arguments): \(r.stderr)")
            #expect(r.stderr.contains(message), "\(arguments): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").filter { $0.hasPrefix("kiln: error") }.count == 1, "\(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: out))
        }
    }
}

@Suite("kiln peak")
struct PeakCLITests {
    @Test("prints fp32, int8 and bf16 rows; every measured rate is positive; fp32 is the unit of the last column")
    func peak() throws {
        let r = try kiln("peak", "--seconds", "0.05", "--threads", "2")
        #expect(r.status == 0, "\(r.stderr)")
        let rows = r.stdout.split(separator: "\n").map(String.init)
        #expect(rows.first?.hasPrefix("CPU: ") == true)
        for type in ["fp32", "int8", "bf16"] { #expect(rows.contains { $0.hasPrefix(type + "  ") }, "\(type):\n\(r.stdout)") }
        // A measured row: "fp32  AVX2 vfmadd (8 floats)   107.6   214.2 GOP/s  1.00".
        for row in rows where row.contains("GOP/s") {
            let numbers = row.split(separator: " ").compactMap { Double($0) }
            #expect(numbers.count >= 3 && numbers[numbers.count - 3] > 0 && numbers[numbers.count - 2] > 0, "\(row)")
        }
        #expect(rows.contains { $0.hasPrefix("fp32") && $0.contains("GOP/s") && $0.hasSuffix("1.00") }, "\(r.stdout)")
    }
}

@Suite("kiln eval --precision int8", .serialized)
struct EvalInt8CLITests {
    @Test("the int8 figures equal `kiln eval` of the model `kiln quantize` writes, the f32 ones those of plain `kiln eval`")
    func sameAsQuantizeThenEval() throws {
        let dir = try scratch("eval-int8")
        let test = dir.appendingPathComponent("test").path, train = dir.appendingPathComponent("train").path
        let images = repositoryRoot.appendingPathComponent("data/mnist5k/mnist5k-images-idx3-ubyte.gz").path
        for (folder, part) in [(test, "test"), (train, "train")] {
            let w = try run(python, [repositoryRoot.appendingPathComponent("scripts/demo_check.py").path, "pngs", images, "450", folder, part])
            try #require(w.status == 0, "\(w.stderr)")
        }
        // A trained model would do too; seeded random weights keep the test short.
        let model = dir.appendingPathComponent("m.onnx").path, quantized = dir.appendingPathComponent("q.onnx").path
        try #require(try kiln("convert", "models/resnet8-mnist.kiln", "-o", model, "--seed", "3").status == 0)
        let reports = ["int8", "f32", "written"].map { dir.appendingPathComponent("\($0).json").path }
        let int8 = try kiln("eval", model, test, "--precision", "int8", "--calibrate", train, "--report", reports[0])
        #expect(int8.status == 0, "\(int8.stderr)")
        #expect(int8.stdout.contains("the model quantized to int8") && int8.stdout.contains("int8 against f32 on the same images: top-1 "))
        #expect(try kiln("eval", model, test, "--report", reports[1]).status == 0)
        #expect(try kiln("quantize", model, "--calibrate", train, "-o", quantized).status == 0)
        #expect(try kiln("eval", quantized, test, "--report", reports[2]).status == 0)
        func json(_ path: String) throws -> [String: Any] {
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        }
        let (a, f, q) = (try json(reports[0]), try json(reports[1]), try json(reports[2]))
        let comparison = a["float"] as? [String: Any]
        #expect(a["precision"] as? String == "int8" && f["precision"] as? String == "f32")
        for key in ["top1", "meanClass", "many", "few"] {
            #expect((a[key] as? Double) == (q[key] as? Double), "\(key): in memory \(a[key] ?? "–"), written \(q[key] ?? "–")")
            #expect((comparison?[key] as? Double) == (f[key] as? Double), "\(key): \(comparison?[key] ?? "–") vs \(f[key] ?? "–")")
        }
        let agreement = comparison?["agreement"] as? Double ?? -1
        #expect(agreement >= 0 && agreement <= 1)
        // bf16: the same report, the f32 figures beside equal plain eval's.
        let bf16Report = dir.appendingPathComponent("bf16.json").path
        let bf16 = try kiln("eval", model, test, "--precision", "bf16", "--report", bf16Report)
        #expect(bf16.status == 0 && bf16.stdout.contains("bf16 against f32 on the same images: top-1 "), "\(bf16.stderr)")
        let b = try json(bf16Report), bf = b["float"] as? [String: Any]
        #expect(b["precision"] as? String == "bf16")
        for key in ["top1", "meanClass"] { #expect((bf?[key] as? Double) == (f[key] as? Double), "\(key)") }
        #expect((bf?["agreement"] as? Double ?? -1) >= 0.9)
    }

    @Test("--precision errors")
    func errors() throws {
        let test = repositoryRoot.appendingPathComponent("data").path
        for (arguments, message) in [
            (["--precision", "int4"], "--precision must be f32, bf16 or int8, got 'int4'"),
            (["--precision", "int8"], "--precision int8 needs --calibrate FOLDER"),
            (["--calibrate", test], "--calibrate goes with --precision int8"),
        ] {
            let r = try run(kilnBinary, ["eval", "models/resnet8-mnist.kiln", test] + arguments)
            #expect(r.status == 1 && r.stderr.contains(message), "\(arguments): \(r.stderr)")
        }
        // run, infer and bench take f32 or bf16.
        for command in [["run", "models/resnet8-mnist.kiln"], ["infer", "models/resnet8-mnist.kiln", test], ["bench", "models/resnet8-mnist.kiln"]] {
            let r = try run(kilnBinary, command + ["--precision", "int8"])
            #expect(r.status != 0 && r.stderr.contains("--precision must be f32 or bf16, got 'int8'"), "\(command): \(r.stderr)")
        }
    }
}

@Suite("Models onnxruntime quantized", .serialized)
struct ORTQuantizedTests {
    @Test("onnxruntime's quantize_static output of ResNet-8 runs in Kiln (int8 kernels where the CPU has VNNI, and f32) within one output step of onnxruntime")
    func ortQuantizedResNet8() throws {
        try #require(FileManager.default.isExecutableFile(atPath: python.path), "no Python venv at \(python.path): run scripts/setup.sh")
        let dir = try scratch("ort-quantized")
        let model = dir.appendingPathComponent("r8.onnx").path, quantized = dir.appendingPathComponent("r8-int8.onnx").path
        #expect(try kiln("convert", "models/resnet8-mnist.kiln", "-o", model, "--seed", "3").status == 0)
        var state: UInt32 = 99
        let values = (0..<(4 * 28 * 28)).map { _ -> Float in state = state &* 1_664_525 &+ 1_013_904_223; return Float(state >> 8) / Float(1 << 24) }
        let input = dir.appendingPathComponent("x.npy").path
        try NPY.write(TensorData(floats: values, shape: [4, 1, 28, 28]), path: input)
        let expectedPath = dir.appendingPathComponent("ort.npy").path
        let q = try run(python, [repositoryRoot.appendingPathComponent("scripts/ort_quantize.py").path, model, quantized, input, expectedPath])
        #expect(q.status == 0, "\(q.stderr)")
        let step = try #require(q.stdout.split(separator: "\n").first { $0.hasPrefix("step ") }.flatMap { Double($0.dropFirst(5)) })
        #expect(q.stdout.contains("QuantizeLinear") && q.stdout.contains("DequantizeLinear"))
        let expected = try NPY.read(path: expectedPath)
        for int8 in [true, false] {
            let out = dir.appendingPathComponent(int8 ? "kiln-int8" : "kiln-f32").path
            // (The built-in rule's choice, int8 where the CPU has VNNI: the tuner may keep this
            // small model's layers in f32.)
            let r = try run(URL(fileURLWithPath: "/usr/bin/env"), ["KILN_INT8=\(int8 ? 1 : 0)", "KILN_TUNE=0", kilnBinary.path, "run", quantized, "--input", "image=\(input)", "--output", out])
            #expect(r.status == 0, "\(r.stderr)")
            let got = try NPY.read(path: out + "/linear.npy")
            #expect(got.shape == expected.shape)
            let worst = (0..<got.count).map { abs(got.double(at: $0) - expected.double(at: $0)) }.max() ?? .infinity
            #expect(worst <= step * 1.0001, "int8 kernels \(int8): worst difference \(worst), a step \(step)")
            let dump = try kiln("dump", quantized, "--program", "--no-tune")
            if int8 { #expect(dump.stdout.contains("conv/int8_vnni") == (kiln_qconv_vnni() != 0)) }
        }
    }
}
