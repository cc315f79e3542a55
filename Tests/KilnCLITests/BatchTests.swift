import Foundation
import Graph
import Testing

/// Models whose batch is written into the file (torch.onnx.export's default is 1): rebound
/// where the graph allows, run in groups of the fixed size where a constant bakes it in, and
/// never fed more images than their program holds.
@Suite("Fixed-batch models at any --batch", .serialized)
struct BatchTests {
    static let variants = ["dynamic", "fixed1", "fixed4", "baked1", "baked4"]

    struct Expected: Decodable {
        var files: [String]
        var labels: [Int]
        var probabilities: [String: [[Double]]]
    }

    /// scripts/batch_models.py: the variants of a seeded ResNet-8, a folder of digits, and
    /// onnxruntime's probabilities per image, each image run on its own.
    static let setup: Result<(URL, Expected), Error> = Result {
        let dir = try scratch("batch-models")
        let dynamic = dir.appendingPathComponent("source.onnx").path
        let c = try kiln("convert", "models/resnet8-mnist.kiln", "-o", dynamic, "--seed", "3")
        guard c.status == 0 else { throw CLIFailure(c.stderr) }
        let r = try run(python, [repositoryRoot.appendingPathComponent("scripts/batch_models.py").path, dynamic, dir.path, "23"])
        guard r.status == 0 else { throw CLIFailure(r.stderr) }
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: dir.appendingPathComponent("expected.json")))
        return (dir, expected)
    }

    struct CLIFailure: Error, CustomStringConvertible {
        var description: String
        init(_ s: String) { description = s }
    }

    /// Rows of a --top-k 10 CSV: path and the probability of every class.
    func rows(_ csv: String) -> [(String, [Int: Double])] {
        csv.split(separator: "\n").dropFirst().map { line in
            let f = line.split(separator: ",").map(String.init)
            var p: [Int: Double] = [:]
            for i in stride(from: 1, to: f.count - 1, by: 2) { p[Int(f[i])!] = Double(f[i + 1])! }
            return (f[0], p)
        }
    }

    @Test("kiln infer at --batch 1, 2, 7, 128: every variant's rows equal onnxruntime run image by image (within the printed 1e-6)",
          arguments: variants)
    func infer(_ variant: String) throws {
        let (dir, expected) = try Self.setup.get()
        let model = dir.appendingPathComponent("\(variant).onnx").path, images = dir.appendingPathComponent("images").path
        var first: [(String, [Int: Double])]? = nil
        for batch in [1, 2, 7, 128] {
            let out = dir.appendingPathComponent("\(variant)-\(batch).csv").path
            let r = try kiln("infer", model, images, "--batch", String(batch), "--top-k", "10", "--output", out)
            try #require(r.status == 0, "\(variant) --batch \(batch): \(r.stderr)")
            if variant.hasPrefix("baked") && batch != Int(variant.suffix(1))! {
                #expect(r.stderr.contains("batch is fixed at \(variant.suffix(1)) by a constant"), "\(r.stderr)")
            } else {
                #expect(!r.stderr.contains("fixed at"), "rebound silently: \(r.stderr)")
            }
            let got = rows(try String(contentsOfFile: out, encoding: .utf8))
            try #require(got.count == expected.files.count, "\(variant) --batch \(batch): \(got.count) rows")
            for (k, (path, p)) in got.enumerated() {
                #expect(path.hasSuffix("/" + expected.files[k]))
                for (c, want) in expected.probabilities[variant]![k].enumerated() {
                    #expect(abs(p[c]! - want) <= 1e-6, "\(variant) --batch \(batch) \(path) class \(c): \(p[c]!) vs onnxruntime \(want)")
                }
            }
            // The same rows at every batch size: the same top-10 order, probabilities within the
            // last printed digit (kernels chosen per batch sum in different orders).
            // (Two printed values one unit apart differ by a hair over 1e-6 in binary.)
            if let first {
                for (a, b) in zip(first, got) {
                    #expect(a.1.keys.sorted() == b.1.keys.sorted(), "\(variant) --batch \(batch) \(b.0): top-10 classes differ from --batch 1")
                    for (c, pa) in a.1 {
                        guard let pb = b.1[c] else { continue }
                        #expect(abs(pa - pb) <= 1e-6 + 1e-12, "\(variant) --batch \(batch) \(b.0) class \(c): \(pb) vs \(pa) at --batch 1")
                    }
                }
            } else {
                first = got
            }
        }
    }

    @Test("kiln eval at --batch 1, 2, 7, 128: the accuracy of onnxruntime's top-1, for every variant", arguments: variants)
    func eval(_ variant: String) throws {
        let (dir, expected) = try Self.setup.get()
        let model = dir.appendingPathComponent("\(variant).onnx").path, images = dir.appendingPathComponent("images").path
        let probs = expected.probabilities[variant]!
        let correct = zip(probs, expected.labels).filter { p, l in p.indices.max { p[$0] < p[$1] } == l }.count
        let want = Double(correct) / Double(expected.files.count)
        #expect(Set(expected.labels).count == 10, "the folder holds every class")
        for batch in [1, 2, 7, 128] {
            let report = dir.appendingPathComponent("\(variant)-\(batch).json")
            let r = try kiln("eval", model, images, "--batch", String(batch), "--report", report.path)
            try #require(r.status == 0, "\(variant) --batch \(batch): \(r.stderr)")
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as! [String: Any]
            #expect(json["images"] as? Int == expected.files.count)
            #expect(abs((json["top1"] as! Double) - want) < 1e-9, "\(variant) --batch \(batch): top-1 \(json["top1"]!) vs onnxruntime \(want)")
        }
    }

    @Test("kiln bench --batch 8 runs every variant", arguments: variants)
    func bench(_ variant: String) throws {
        let (dir, _) = try Self.setup.get()
        let r = try kiln("bench", dir.appendingPathComponent("\(variant).onnx").path, "--batch", "8", "--rounds", "1", "--runs", "2", "--warmup", "1")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("batch 8"), "\(r.stdout)")
        // ResNet-8: 0.0183 GFLOP per image, so 8 images are 0.146 GFLOP however they run.
        #expect(r.stdout.contains("(0.1463 GFLOP per batch)"), "\(r.stdout)")
    }

    @Test("kiln run with 5 images on a model fixed at 1 or 4: the rows of the dynamic model, compiled and reference",
          arguments: ["fixed1", "fixed4", "baked1", "baked4"])
    func runLarger(_ variant: String) throws {
        let (dir, _) = try Self.setup.get()
        let x = dir.appendingPathComponent("x5.npy").path
        if !FileManager.default.fileExists(atPath: x) {
            let r = try run(python, ["-c", "import numpy as np; np.save('\(x)', np.random.default_rng(1).random((5, 1, 28, 28), dtype=np.float32))"])
            try #require(r.status == 0, "\(r.stderr)")
        }
        for mode in [[], ["--reference"]] {
            let want = dir.appendingPathComponent("dynamic-run\(mode.count)").path
            if !FileManager.default.fileExists(atPath: want + "/linear.npy") {
                let r = try run(kilnBinary, ["run", dir.appendingPathComponent("dynamic.onnx").path, "--input", x, "--output", want] + mode)
                try #require(r.status == 0, "\(r.stderr)")
            }
            let out = dir.appendingPathComponent("\(variant)-run\(mode.count)").path
            let r = try run(kilnBinary, ["run", dir.appendingPathComponent("\(variant).onnx").path, "--input", x, "--output", out] + mode)
            try #require(r.status == 0, "\(variant) \(mode): \(r.stderr)")
            let a = try NPY.read(path: out + "/linear.npy"), b = try NPY.read(path: want + "/linear.npy")
            #expect(a.shape == [5, 10])
            #expect(relativeError(a, b) < 1e-5, "\(variant) \(mode)")
        }
    }

    @Test("kiln train takes a model exported at batch 1 (its step and evaluation rebound); a baked batch is one clear error")
    func train() throws {
        let (dir, _) = try Self.setup.get()
        let common = ["--data", "data/mnist5k/mnist5k-images-idx3-ubyte.gz", "--split-first", "30", "--epochs", "1", "--batch", "16"]
        let ok = try run(kilnBinary, ["train", "--model", dir.appendingPathComponent("fixed1.onnx").path, "--out", dir.appendingPathComponent("train-fixed1").path] + common)
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stderr.contains("top-1") || ok.stdout.contains("top-1"), "\(ok.stdout)")
        let baked = try run(kilnBinary, ["train", "--model", dir.appendingPathComponent("baked1.onnx").path, "--out", dir.appendingPathComponent("train-baked1").path] + common)
        #expect(baked.status == 1, "\(baked.stderr)")
        #expect(baked.stderr.contains("batch is fixed at 1") && baked.stderr.contains("dynamic batch"), "\(baked.stderr)")
        #expect(baked.stderr.split(separator: "\n").filter { $0.hasPrefix("kiln: error:") }.count == 1)
    }
}
