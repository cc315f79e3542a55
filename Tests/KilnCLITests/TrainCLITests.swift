import Foundation
import Testing

/// `kiln train` and `kiln export` as a user runs them, on the MNIST sample in data/.
@Suite("kiln train: crash-safe checkpoints, resume, errors, export", .serialized)
struct TrainCLITests {
    static let images = repositoryRoot.appendingPathComponent("data/mnist5k/mnist5k-images-idx3-ubyte.gz").path

    /// A small LDAM-DRW run: ResNet-8, the ratio-10 subset (1,663 images: 25 full batches of
    /// 64 and a partial one), crops, 3 epochs with DRW and a decay inside them.
    static func arguments(_ out: String, epochs: Int = 3) -> [String] {
        ["train", "--model", "models/resnet8-mnist.kiln", "--data", images, "--split-first", "400", "--lt-profile", "exp",
         "--lt-ratio", "10", "--loss", "ldam", "--rule", "drw", "--epochs", "\(epochs)", "--batch", "64", "--crop-padding", "2",
         "--warmup", "1", "--seed", "5", "--threads", "2", "--out", out]
    }

    func bytes(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

    @Test("kill -9 at a random moment, then --resume: the final checkpoint and export are bit-identical to an uninterrupted run",
          arguments: [[], ["--randaugment", "2,9", "--sam", "0.05", "--mixup", "0.2", "--cutmix", "1"]])
    func killAndResume(_ extra: [String]) throws {
        let dir = try scratch("resume\(extra.isEmpty ? "" : "-augmented")")
        let a = dir.appendingPathComponent("uninterrupted").path, b = dir.appendingPathComponent("killed").path
        let full = try run(kilnBinary, Self.arguments(a) + extra)
        try #require(full.status == 0, "\(full.stderr)")
        #expect(full.stdout.contains("exported"))

        // The interrupted run: killed at a random time after its first checkpoint (so in the
        // middle of a later epoch, or while it writes one), then resumed until done.
        var generator = SystemRandomNumberGenerator()
        let p = Process()
        p.executableURL = kilnBinary
        p.arguments = Self.arguments(b) + extra
        p.currentDirectoryURL = repositoryRoot
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let checkpoint = b + "/checkpoint.kcp"
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: checkpoint) && p.isRunning && Date() < deadline { usleep(20_000) }
        let delay = UInt32.random(in: 0...1_500_000, using: &generator)
        usleep(delay)
        let killed = p.isRunning
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        #expect(killed, "the run finished before the kill; the test checked nothing")
        let resumed = try run(kilnBinary, ["train", "--out", b, "--resume"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stdout.contains("resuming"), "killed: \(killed), delay \(delay) µs")

        let want = try #require(bytes(a + "/checkpoint.kcp")), got = try #require(bytes(checkpoint))
        // Compared as one Bool: a failing comparison of two large Data values would make the
        // test library compute a diff of them.
        let identical = want == got
        #expect(identical, "checkpoints differ after a kill \(delay) µs after the first epoch (process still running: \(killed))")
        let sameExport = bytes(a + "/model.onnx") == bytes(b + "/model.onnx")
        #expect(sameExport)
        // metrics.jsonl has one line per epoch, none repeated.
        let lines = try String(contentsOfFile: b + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines.map { $0.contains("\"epoch\":\(lines.firstIndex(of: $0)! + 1),") }.allSatisfy { $0 })
        // No temporary files are left behind.
        let names = try FileManager.default.contentsOfDirectory(atPath: b)
        #expect(Set(names) == ["checkpoint.kcp", "metrics.jsonl", "model.onnx"], "\(names)")
    }

    @Test("a diverging run stops on the first non-finite loss with a clear message, saving nothing past its last good epoch")
    func divergence() throws {
        let dir = try scratch("nan").appendingPathComponent("run").path
        let first = try run(kilnBinary, Self.arguments(dir, epochs: 1))
        try #require(first.status == 0, "\(first.stderr)")
        #expect(bytes(dir + "/checkpoint.kcp") != nil)
        // --force starts over in the same folder (the old run's files go), and the LR blows up.
        let r = try run(kilnBinary, Self.arguments(dir, epochs: 3) + ["--lr", "1e30", "--force"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("the loss became"), "\(r.stderr)")
        #expect(r.stderr.contains("at epoch 1, batch"))
        #expect(r.stderr.contains("no epoch finished, nothing saved"))
        #expect(!r.stderr.contains("Fatal error"))
        #expect(bytes(dir + "/checkpoint.kcp") == nil)
        #expect(bytes(dir + "/model.onnx") == nil)
        #expect(bytes(dir + "/metrics.jsonl")?.count ?? 0 == 0)
    }

    @Test("bad settings and an unwritable --out fail before training, naming the problem")
    func errors() throws {
        let cases: [([String], String)] = [
            (["train", "--model", "models/resnet8-mnist.kiln", "--data", Self.images, "--out", "/dev/null/run"], "/dev/null/run"),
            (["train", "--model", "models/resnet8-mnist.kiln", "--data", "/nonexistent/x-images-idx3-ubyte", "--out", "/tmp/kiln-never"], "no such file"),
            (["train", "--model", "models/resnet32-cifar.kiln", "--data", Self.images, "--out", try scratch("shape").path], "the model takes images [3, 32, 32], the data holds [1, 28, 28]"),
            (["train", "--model", "models/resnet8-mnist.kiln", "--data", Self.images, "--lt-profile", "exp", "--out", "/tmp/kiln-never"], "--lt-profile and --lt-ratio go together"),
            (["train", "--model", "models/resnet8-mnist.kiln", "--data", Self.images, "--epochs", "0", "--out", "/tmp/kiln-never"], "--epochs must be at least 1"),
            (["train", "--out", try scratch("empty").path, "--resume"], "no checkpoint.kcp here"),
            (["export", try scratch("empty2").path], "no checkpoint.kcp here"),
        ]
        for (args, message) in cases {
            let r = try run(kilnBinary, args)
            #expect(r.status != 0, "\(args)")
            #expect(r.stderr.contains(message), "\(args): \(r.stderr)")
            #expect(!r.stderr.contains("Fatal error"))
        }
        #expect(!FileManager.default.fileExists(atPath: "/tmp/kiln-never/checkpoint.kcp"))
    }

    @Test("an existing run is not overwritten without --force")
    func noClobber() throws {
        let dir = try scratch("clobber").appendingPathComponent("run").path
        let first = try run(kilnBinary, Self.arguments(dir, epochs: 1))
        try #require(first.status == 0, "\(first.stderr)")
        let before = bytes(dir + "/checkpoint.kcp")
        let again = try run(kilnBinary, Self.arguments(dir, epochs: 1))
        #expect(again.status != 0)
        #expect(again.stderr.contains("already holds a run (epoch 1 of 1)"), "\(again.stderr)")
        let unchanged = bytes(dir + "/checkpoint.kcp") == before
        #expect(unchanged)
    }
}
