import Foundation
import Testing

/// `mpirun -np K kiln infer|eval`: sharded over ranks on this machine, over shared memory and
/// over TCP on loopback; the outputs must be byte-identical to one process's.
@Suite("Distributed folder inference and evaluation (mpirun)", .serialized)
struct ClusterTests {
    /// mpirun's options for every launch here. Under `make sanitize` (ASAN_OPTIONS set) leak
    /// detection is off in the ranks: Open MPI unloads its components at MPI_Finalize and
    /// leaves allocations LeakSanitizer cannot attribute (frames in unloaded modules); ASan's
    /// memory errors and UBSan stay on.
    static var launch: [String] {
        var a = ["--oversubscribe", "--allow-run-as-root"]
        if let asan = ProcessInfo.processInfo.environment["ASAN_OPTIONS"] { a += ["-x", "ASAN_OPTIONS=\(asan):detect_leaks=0"] }
        return a
    }

    /// `mpirun -np ranks kiln …` (one thread per rank), optionally forced onto TCP.
    func mpirun(_ ranks: Int, tcp: Bool = false, options: [String] = [], _ arguments: [String]) throws -> Run {
        var a = ["-np", "\(ranks)"] + Self.launch + options
        if tcp { a += ["--mca", "btl", "tcp,self"] }
        return try run(URL(fileURLWithPath: "/usr/bin/mpirun"), a + [kilnBinary.path] + arguments + ["--threads", "1"])
    }

    func contents(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

    @Test("kiln infer on 100 good and 20 bad files: 2 ranks (shared memory) and 3 (TCP) write the same predictions and errors as one process")
    func infer() throws {
        let dir = try scratch("mpi-infer")
        let images = dir.appendingPathComponent("images").path
        let made = try run(python, [repositoryRoot.appendingPathComponent("scripts/bad_folder.py").path, images])
        try #require(made.status == 0, "\(made.stderr)")
        let one = dir.appendingPathComponent("one.csv").path
        let single = try kiln("infer", "models/resnet8-mnist.kiln", images, "--output", one, "--batch", "16")
        #expect(single.status == 2, "\(single.stderr)")
        for (ranks, tcp) in [(2, false), (3, true)] {
            let out = dir.appendingPathComponent("ranks\(ranks).csv").path
            let r = try mpirun(ranks, tcp: tcp, ["infer", "models/resnet8-mnist.kiln", images, "--output", out, "--batch", "16"])
            #expect(r.status == 2, "\(ranks) ranks: \(r.stderr)")
            #expect(r.stderr.contains("by \(ranks) ranks"), "\(r.stderr)")
            #expect(contents(out) != nil && contents(out) == contents(one), "\(ranks) ranks: the predictions differ")
            #expect(contents(out + ".errors.txt") != nil && contents(out + ".errors.txt") == contents(one + ".errors.txt"), "\(ranks) ranks: the errors differ")
            // Notes come once, from rank 0.
            #expect(r.stderr.components(separatedBy: "has no trained weights").count == 2, "\(r.stderr)")
        }
    }

    @Test("kiln eval (f32, and int8 with calibration) on a class folder with bad files: 2 ranks print and write what one process does")
    func eval() throws {
        let dir = try scratch("mpi-eval")
        let test = dir.appendingPathComponent("test").path, train = dir.appendingPathComponent("train").path
        let images = repositoryRoot.appendingPathComponent("data/mnist5k/mnist5k-images-idx3-ubyte.gz").path
        for (folder, part) in [(test, "test"), (train, "train")] {
            let w = try run(python, [repositoryRoot.appendingPathComponent("scripts/demo_check.py").path, "pngs", images, "480", folder, part])
            try #require(w.status == 0, "\(w.stderr)")
        }
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: test + "/3/bad.png"))
        try Data().write(to: URL(fileURLWithPath: test + "/7/empty.jpg"))
        for extra in [[], ["--precision", "int8", "--calibrate", train, "--calibration-images", "64"]] {
            let base = ["eval", "models/resnet8-mnist.kiln", test] + extra
            let one = try run(kilnBinary, base + ["--report", dir.appendingPathComponent("one.json").path, "--errors", dir.appendingPathComponent("one.err").path])
            let two = try mpirun(2, base + ["--report", dir.appendingPathComponent("two.json").path, "--errors", dir.appendingPathComponent("two.err").path])
            #expect(one.status == 2 && two.status == 2, "\(one.stderr)\n\(two.stderr)")
            #expect(one.stdout.replacingOccurrences(of: "one.json", with: "two.json") == two.stdout, "\(extra):\n\(one.stdout)\n---\n\(two.stdout)")
            #expect(contents(dir.appendingPathComponent("one.json").path) == contents(dir.appendingPathComponent("two.json").path))
            #expect(contents(dir.appendingPathComponent("one.err").path) == contents(dir.appendingPathComponent("two.err").path))
            #expect(String(decoding: contents(dir.appendingPathComponent("two.err").path) ?? Data(), as: UTF8.self).split(separator: "\n").count == 2)
        }
    }

    @Test("a model missing on one rank ends the job with an error naming that rank, and nothing is written")
    func missingOnOneRank() throws {
        let dir = try scratch("mpi-missing")
        let out = dir.appendingPathComponent("out.csv").path
        let images = repositoryRoot.appendingPathComponent("data").path
        let start = Date()
        // MPMD: rank 0 gets the model, rank 1 a path that does not exist.
        let r = try run(URL(fileURLWithPath: "/usr/bin/mpirun"), Self.launch + [
            "-np", "1", kilnBinary.path, "infer", "models/resnet8-mnist.kiln", images, "--output", out, ":",
            "-np", "1", kilnBinary.path, "infer", dir.appendingPathComponent("absent.onnx").path, images, "--output", out,
        ])
        #expect(r.status != 0)
        #expect(r.stderr.contains("kiln: error on rank 1 of 2:") && r.stderr.contains("absent.onnx"), "\(r.stderr)")
        #expect(Date().timeIntervalSince(start) < 30)
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    static let images = repositoryRoot.appendingPathComponent("data/mnist5k/mnist5k-images-idx3-ubyte.gz").path

    /// The largest difference between two exported models' float initialisers: relative to the
    /// tensor's largest value (tensors above 1e-3), and absolute (every tensor).
    func difference(_ a: String, _ b: String) throws -> (relative: Double, absolute: Double) {
        let r = try run(python, ["-c", """
            import onnx, numpy as np, sys
            from onnx import numpy_helper
            def load(p): return {i.name: numpy_helper.to_array(i) for i in onnx.load(p).graph.initializer if i.data_type == 1}
            a, b = load(sys.argv[1]), load(sys.argv[2])
            assert a.keys() == b.keys() and len(a) > 10
            print(max(float(np.abs(a[n] - b[n]).max() / np.abs(a[n]).max()) for n in a if np.abs(a[n]).max() > 1e-3),
                  max(float(np.abs(a[n] - b[n]).max()) for n in a))
            """, a, b])
        let v = r.stdout.split(separator: " ").compactMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        guard r.status == 0, v.count == 2 else { throw RuntimeError(message: "comparison failed: \(r.stderr)") }
        return (v[0], v[1])
    }

    struct RuntimeError: Error { let message: String }

    @Test("kiln train: one process, 2 ranks and 3 ranks end one epoch (a step of 128 and one of 2, so one of 3 ranks has no image) with the same parameters")
    func trainingStep() throws {
        let dir = try scratch("mpi-train")
        let arguments = ["train", "--model", "models/resnet8-mnist.kiln", "--data", Self.images, "--split-first", "13", "--loss", "ldam", "--rule", "drw",
                         "--epochs", "1", "--batch", "128", "--crop-padding", "2", "--flip", "--seed", "3", "--warmup", "0"]
        let one = dir.appendingPathComponent("one").path
        let single = try run(kilnBinary, arguments + ["--out", one, "--threads", "2"])
        try #require(single.status == 0, "\(single.stderr)")
        // 3 ranks with 16 KiB gradient buckets (ResNet-8's 0.3 MB in a dozen, reduced while
        // the backward runs), 2 with the default 1 MiB (one bucket).
        for ranks in [2, 3] {
            let out = dir.appendingPathComponent("ranks\(ranks)").path
            let r = try mpirun(ranks, options: ranks == 3 ? ["-x", "KILN_BUCKET_BYTES=16384"] : [], arguments + ["--out", out])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(r.stdout.contains("data-parallel: \(ranks) ranks"), "\(r.stdout)")
            let d = try difference(one + "/model.onnx", out + "/model.onnx")
            #expect(d.relative <= 1e-5 && d.absolute <= 1e-5, "\(ranks) ranks: \(d)")
        }
    }

    @Test("a rank killed mid-run ends the job within 30 s naming it; --resume with the same ranks completes the run")
    func killAndResume() throws {
        let dir = try scratch("mpi-kill")
        let out = dir.appendingPathComponent("run").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/mpirun")
        p.arguments = ["-np", "2"] + Self.launch + [kilnBinary.path, "train", "--model", "models/resnet8-mnist.kiln",
                       "--data", Self.images, "--split-first", "60", "--epochs", "8", "--batch", "64", "--seed", "2", "--threads", "1", "--out", out]
        let errors = Pipe()
        p.standardOutput = Pipe()
        p.standardError = errors
        try p.run()
        let checkpoint = out + "/checkpoint.kcp"
        for _ in 0..<600 where !FileManager.default.fileExists(atPath: checkpoint) { usleep(50_000) }
        try #require(FileManager.default.fileExists(atPath: checkpoint))
        // Rank 1: the rank whose environment says so.
        let ranks = try run(URL(fileURLWithPath: "/usr/bin/pgrep"), ["-f", "kiln train --model models/resnet8-mnist.kiln --data \(Self.images) --split-first 60"])
        var victim: Int32? = nil
        for pid in ranks.stdout.split(separator: "\n").compactMap({ Int32($0) }) {
            let environ = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/environ"))) ?? Data()
            if String(decoding: environ, as: UTF8.self).split(separator: "\0").contains("OMPI_COMM_WORLD_RANK=1") { victim = pid }
        }
        let killedAt = Date()
        try #require(victim != nil, "no rank 1 among \(ranks.stdout)")
        kill(victim!, SIGKILL)
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(Date().timeIntervalSince(killedAt) < 30)
        #expect(p.terminationStatus != 0)
        #expect(text.contains("process rank 1") && text.contains("signal 9"), "\(text)")
        let resumed = try mpirun(2, ["train", "--out", out, "--resume"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stdout.contains("exported \(out)/model.onnx: epoch 8 of 8"), "\(resumed.stdout)")
    }
}

