import Foundation
import Graph
import Testing

/// infer, eval, train and export when their output cannot be written — a read-only folder, a
/// full disk — or when SIGTERM stops them: one line `kiln: error: …`, the documented exit
/// code (1, or 143 for SIGTERM), no half-written file under the final name or any other, and
/// an earlier output or checkpoint intact.
///
/// As root (CI) the read-only folder and the full disk are real tmpfs mounts (read-only, and a
/// few KiB); otherwise a folder without write permission and a file-size limit (ulimit -f,
/// SIGXFSZ ignored, so writes fail with EFBIG) stand in for them.
@Suite("Faults while writing: read-only folders, full disks, SIGTERM", .serialized)
struct WriteFaultTests {
    static let isRoot = getuid() == 0

    /// A folder of `count` PNG digits (class folders) and a trained-looking model: ResNet-8 with
    /// seeded weights as ONNX.
    static let setup: Result<(dir: URL, images: String, model: String), Error> = Result {
        let dir = try scratch("write-faults")
        let images = dir.appendingPathComponent("images").path
        let r = try run(python, ["-c", """
            import gzip, os, sys, numpy as np
            from PIL import Image
            px = np.frombuffer(gzip.open('data/mnist5k/mnist5k-images-idx3-ubyte.gz').read(), np.uint8, offset=16).reshape(-1, 28, 28)
            for k in range(600):
                d = os.path.join(sys.argv[1], str(k % 10)); os.makedirs(d, exist_ok=True)
                Image.fromarray(px[k * 8], 'L').save(os.path.join(d, f'img{k:04d}.png'))
            """, images])
        guard r.status == 0 else { throw WriteFaultError(r.stderr) }
        let model = dir.appendingPathComponent("r8.onnx").path
        let c = try kiln("convert", "models/resnet8-mnist.kiln", "-o", model, "--seed", "2")
        guard c.status == 0 else { throw WriteFaultError(c.stderr) }
        return (dir, images, model)
    }

    struct WriteFaultError: Error, CustomStringConvertible {
        var description: String
        init(_ s: String) { description = s }
    }

    /// A folder nothing can be written into: a read-only tmpfs as root, else mode 0555.
    static func readOnlyFolder(_ name: String) throws -> String {
        let d = try scratch(name).path
        if isRoot {
            let m = try run(URL(fileURLWithPath: "/bin/mount"), ["-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", d])
            try #require(m.status == 0, "mount: \(m.stderr)")
        } else {
            chmod(d, 0o555)
        }
        return d
    }

    /// A folder on a full-sized-`kib` tmpfs as root; else an ordinary folder, and `limited`
    /// runs kiln under a file-size limit of `kib`.
    static func smallDisk(_ name: String, kib: Int) throws -> String {
        let d = try scratch(name).path
        if isRoot {
            let m = try run(URL(fileURLWithPath: "/bin/mount"), ["-t", "tmpfs", "-o", "size=\(kib)k", "tmpfs", d])
            try #require(m.status == 0, "mount: \(m.stderr)")
        }
        return d
    }

    static func unmount(_ d: String) {
        if isRoot { _ = try? run(URL(fileURLWithPath: "/bin/umount"), [d]) }
    }

    /// kiln with `arguments`, under `ulimit -f` of `kib` when not root (see smallDisk).
    static func limited(kib: Int, _ arguments: [String]) throws -> Run {
        if isRoot { return try run(kilnBinary, arguments) }
        let quoted = ([kilnBinary.path] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        return try run(URL(fileURLWithPath: "/bin/sh"), ["-c", "ulimit -f \(kib * 2); trap '' XFSZ; exec \(quoted)"])
    }

    static func oneErrorLine(_ r: Run) -> Bool {
        let lines = r.stderr.split(separator: "\n").filter { $0.hasPrefix("kiln: error:") }
        return lines.count == 1 && !r.stderr.contains("Fatal error") && !r.stderr.contains("Program crashed")
    }

    /// Files left in `dir` other than `expected`.
    static func stray(_ dir: String, expected: Set<String> = []) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { !expected.contains($0) }
    }

    @Test("infer and eval into a read-only folder: one error line, exit 1, nothing written")
    func readOnlyInferEval() throws {
        let (_, images, model) = try Self.setup.get()
        let d = try Self.readOnlyFolder("read-only-infer")
        defer { Self.unmount(d) }
        let r = try kiln("infer", model, images, "--output", d + "/p.csv")
        #expect(r.status == 1 && Self.oneErrorLine(r), "\(r.status) \(r.stderr)")
        #expect(r.stderr.contains(d + "/p.csv"), "\(r.stderr)")
        let e = try kiln("eval", model, images, "--report", d + "/r.json")
        #expect(e.status == 1 && Self.oneErrorLine(e), "\(e.status) \(e.stderr)")
        #expect(Self.stray(d).isEmpty, "\(Self.stray(d))")
    }

    @Test("train and export into a read-only folder: one error line, exit 1")
    func readOnlyTrainExport() throws {
        let d = try Self.readOnlyFolder("read-only-train")
        defer { Self.unmount(d) }
        let t = try kiln("train", "--model", "models/resnet8-mnist.kiln", "--data", "data/mnist5k/mnist5k-images-idx3-ubyte.gz",
                         "--split-first", "20", "--epochs", "1", "--batch", "32", "--out", d + "/run")
        #expect(t.status == 1 && Self.oneErrorLine(t), "\(t.status) \(t.stderr)")
        // A finished run elsewhere, exported into the read-only folder.
        let run = try scratch("export-source").path + "/run"
        let ok = try kiln("train", "--model", "models/resnet8-mnist.kiln", "--data", "data/mnist5k/mnist5k-images-idx3-ubyte.gz",
                          "--split-first", "20", "--epochs", "1", "--batch", "32", "--out", run)
        try #require(ok.status == 0, "\(ok.stderr)")
        let x = try kiln("export", run, "-o", d + "/m.onnx")
        #expect(x.status == 1 && Self.oneErrorLine(x), "\(x.status) \(x.stderr)")
        #expect(Self.stray(d).isEmpty, "\(Self.stray(d))")
    }

    @Test("infer onto a full disk: one error line, exit 1, no partial file, an earlier output unchanged")
    func fullDiskInfer() throws {
        let (_, images, model) = try Self.setup.get()
        let d = try Self.smallDisk("full-infer", kib: 16)
        defer { Self.unmount(d) }
        let out = d + "/p.csv"
        try "an earlier, complete output\n".write(toFile: out, atomically: false, encoding: .utf8)
        let r = try Self.limited(kib: 16, ["infer", model, images, "--output", out, "--top-k", "10"])
        #expect(r.status == 1 && Self.oneErrorLine(r), "\(r.status) \(r.stderr)")
        #expect(r.stderr.contains(Self.isRoot ? "No space left on device" : "File too large"), "\(r.stderr)")
        #expect(try String(contentsOfFile: out, encoding: .utf8) == "an earlier, complete output\n")
        #expect(Self.stray(d, expected: ["p.csv"]).isEmpty, "\(Self.stray(d))")
    }

    @Test("eval's report and export onto a full disk: one error line, exit 1, nothing half-written")
    func fullDiskEvalExport() throws {
        let (_, images, model) = try Self.setup.get()
        let d = try Self.smallDisk("full-export", kib: 8)
        defer { Self.unmount(d) }
        // Fill the disk but for a few hundred bytes, so the small JSON report does not fit either.
        if Self.isRoot {
            let filler = d + "/filler"
            FileManager.default.createFile(atPath: filler, contents: nil)
            let h = try #require(FileHandle(forWritingAtPath: filler))
            while (try? h.write(contentsOf: Data(count: 256))) != nil {}
            try h.close()
        }
        let e = try Self.limited(kib: 1, ["eval", model, images, "--report", d + "/r.json"])
        #expect(e.status == 1 && Self.oneErrorLine(e), "\(e.status) \(e.stderr)")
        let run = try scratch("export-source-2").path + "/run"
        let ok = try kiln("train", "--model", "models/resnet8-mnist.kiln", "--data", "data/mnist5k/mnist5k-images-idx3-ubyte.gz",
                          "--split-first", "20", "--epochs", "1", "--batch", "32", "--out", run)
        try #require(ok.status == 0, "\(ok.stderr)")
        let x = try Self.limited(kib: 8, ["export", run, "-o", d + "/m.onnx"])
        #expect(x.status == 1 && Self.oneErrorLine(x), "\(x.status) \(x.stderr)")
        #expect(Self.stray(d, expected: ["filler"]).isEmpty, "\(Self.stray(d))")
    }

    @Test("train whose disk fills up after its first checkpoint: one error line, exit 1, that checkpoint intact and resumable")
    func fullDiskTrain() throws {
        if !Self.isRoot {
            // Without a mount, a file-size limit below a checkpoint: the start-up space check
            // refuses the run before any epoch.
            let d = try scratch("full-train").path
            let r = try Self.limited(kib: 64, ["train", "--model", "models/resnet8-mnist.kiln", "--data", "data/mnist5k/mnist5k-images-idx3-ubyte.gz",
                                               "--split-first", "40", "--epochs", "2", "--batch", "16", "--out", d + "/run"])
            #expect(r.status == 1 && Self.oneErrorLine(r), "\(r.status) \(r.stderr)")
            return
        }
        // An 8 MiB disk passes the start-up space check; once the first checkpoint is there a
        // filler takes the rest, so the next checkpoint cannot be written.
        let d = try Self.smallDisk("full-train", kib: 8192)
        defer { Self.unmount(d) }
        let runDir = d + "/run", cp = runDir + "/checkpoint.kcp"
        let (p, err) = try start(["train", "--model", "models/resnet8-mnist.kiln", "--data", "data/mnist5k/mnist5k-images-idx3-ubyte.gz",
                                  "--split-first", "100", "--epochs", "3", "--batch", "32", "--threads", "1", "--out", runDir]) {
            FileManager.default.fileExists(atPath: cp)
        }
        let first = try Data(contentsOf: URL(fileURLWithPath: cp))
        let filler = d + "/filler"
        FileManager.default.createFile(atPath: filler, contents: nil)
        let h = try #require(FileHandle(forWritingAtPath: filler))
        while (try? h.write(contentsOf: Data(count: 4096))) != nil {}
        try h.close()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 1, "\(text)")
        #expect(text.split(separator: "\n").filter { $0.hasPrefix("kiln: error:") }.count == 1 && text.contains("No space left on device"), "\(text)")
        #expect(Self.stray(runDir, expected: ["checkpoint.kcp", "metrics.jsonl"]).isEmpty, "\(Self.stray(runDir))")
        // The checkpoint on disk is whole (the one written before the disk filled, or one
        // written after it, never half of one): resume continues from it elsewhere.
        let last = try Data(contentsOf: URL(fileURLWithPath: cp))
        #expect(last.count == first.count)
        let moved = try scratch("full-train-resumed").path
        for f in ["checkpoint.kcp", "metrics.jsonl"] { try FileManager.default.copyItem(atPath: runDir + "/" + f, toPath: moved + "/" + f) }
        let again = try kiln("train", "--out", moved, "--resume")
        #expect(again.status == 0, "\(again.stderr)")
        #expect(FileManager.default.fileExists(atPath: moved + "/model.onnx"))
    }

    /// Starts kiln (stderr to a pipe) and waits, at most a minute, until `ready` holds or it ends.
    func start(_ arguments: [String], until ready: () -> Bool) throws -> (Process, Pipe) {
        let p = Process()
        p.executableURL = kilnBinary
        p.arguments = arguments
        p.currentDirectoryURL = repositoryRoot
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        var waited = 0
        while !ready() && p.isRunning && waited < 1200 { usleep(50_000); waited += 1 }
        return (p, err)
    }

    /// Starts kiln, waits until `ready` holds, sends SIGTERM, and returns the exit status.
    func terminate(_ arguments: [String], when ready: () -> Bool) throws -> (Int32, String) {
        let (p, err) = try start(arguments, until: ready)
        #expect(p.isRunning, "finished before SIGTERM could be sent")
        kill(p.processIdentifier, SIGTERM)
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, text)
    }

    @Test("SIGTERM during infer and eval: exit 143, one error line, no partial file, the earlier output unchanged")
    func sigtermInferEval() throws {
        let (_, images, _) = try Self.setup.get()
        let d = try scratch("sigterm-infer").path
        let out = d + "/p.csv"
        try "earlier\n".write(toFile: out, atomically: false, encoding: .utf8)
        // ResNet-18 (random weights) at 224×224 on one thread takes seconds over the 600 images.
        let (status, text) = try terminate(["infer", "models/resnet18.kiln", images, "--output", out, "--batch", "4", "--threads", "1"]) {
            Self.stray(d, expected: ["p.csv"]).contains { ((try? FileManager.default.attributesOfItem(atPath: d + "/" + $0)[.size] as? Int) ?? 0) > 0 }
        }
        #expect(status == 143, "\(text)")
        #expect(text.contains("kiln: error: stopped by SIGTERM"), "\(text)")
        #expect(try String(contentsOfFile: out, encoding: .utf8) == "earlier\n")
        #expect(Self.stray(d, expected: ["p.csv"]).isEmpty, "\(Self.stray(d))")

        let report = d + "/r.json"
        let start = Date()
        let (s2, t2) = try terminate(["eval", "models/resnet18.kiln", images, "--report", report, "--batch", "4", "--threads", "1"]) {
            Date().timeIntervalSince(start) > 2
        }
        #expect(s2 == 143 && t2.contains("kiln: error: stopped by SIGTERM"), "\(s2) \(t2)")
        #expect(!FileManager.default.fileExists(atPath: report))
        #expect(Self.stray(d, expected: ["p.csv"]).isEmpty, "\(Self.stray(d))")
    }

    @Test("SIGTERM during train: exit 143, the message names --resume, the checkpoint intact and loadable")
    func sigtermTrain() throws {
        let runDir = try scratch("sigterm-train").path + "/run"
        let cp = runDir + "/checkpoint.kcp"
        let (status, text) = try terminate(["train", "--model", "models/resnet8-mnist.kiln", "--data", "data/mnist5k/mnist5k-images-idx3-ubyte.gz",
                                            "--split-first", "100", "--epochs", "40", "--batch", "32", "--threads", "1", "--out", runDir]) {
            FileManager.default.fileExists(atPath: cp)
        }
        #expect(status == 143, "\(text)")
        #expect(text.contains("kiln: error: stopped by SIGTERM; the last checkpoint in \(runDir) is intact"), "\(text)")
        #expect(Self.stray(runDir, expected: ["checkpoint.kcp", "metrics.jsonl"]).isEmpty, "\(Self.stray(runDir))")
        let decoded = try run(kilnBinary, ["export", runDir, "-o", runDir + "/../check.onnx"])
        #expect(decoded.status == 0, "the checkpoint left by SIGTERM loads: \(decoded.stderr)")
    }
}
