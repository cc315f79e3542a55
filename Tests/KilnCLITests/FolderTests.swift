import Foundation
import Testing

/// `kiln infer`, `kiln eval` and `kiln preprocess` on folders, as a user runs them.
@Suite("Folder inference: bad files, outputs, preprocessing", .serialized)
struct FolderTests {
    /// scripts/bad_folder.py: 100 good images in nested folders and 20 bad entries.
    func badFolder() throws -> (String, [String]) {
        let dir = try scratch("bad-folder")
        let images = dir.appendingPathComponent("images").path
        let r = try run(python, [repositoryRoot.appendingPathComponent("scripts/bad_folder.py").path, images])
        try #require(r.status == 0, "\(r.stderr)")
        let bad = try String(contentsOfFile: dir.appendingPathComponent("bad.txt").path, encoding: .utf8).split(separator: "\n").map { images + "/" + $0 }
        return (images, bad)
    }

    @Test("120 entries (100 good, 20 bad of every kind): 100 predictions, 20 errors naming file and reason, exit code 2")
    func badFiles() throws {
        let (images, bad) = try badFolder()
        #expect(bad.count == 20)
        let out = images + "/../predictions.csv"
        let r = try kiln("infer", "models/resnet8-mnist.kiln", images, "--output", out, "--batch", "16")
        #expect(r.status == 2, "\(r.stderr)")
        #expect(!r.stderr.contains("Fatal error"))
        let rows = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
        #expect(rows.first == "path,label1,probability1,label2,probability2,label3,probability3,label4,probability4,label5,probability5")
        let paths = rows.dropFirst().map { String($0.split(separator: ",")[0]) }
        #expect(paths.count == 100)
        #expect(Set(paths).count == 100)
        #expect(paths.allSatisfy { $0.contains("/digit") })
        #expect(paths == paths.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }, "rows follow the sorted walk")
        // Probabilities: five per row, descending, in [0, 1].
        for row in rows.dropFirst() {
            let p = row.split(separator: ",").enumerated().filter { $0.offset > 0 && $0.offset % 2 == 0 }.map { Double($0.element)! }
            #expect(p.count == 5 && p == p.sorted(by: >) && p.allSatisfy { $0 >= 0 && $0 <= 1 })
        }
        let errors = try String(contentsOfFile: out + ".errors.txt", encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(errors.count == 20)
        let named = Set(errors.map { String($0[..<$0.range(of: ": ")!.lowerBound]) })
        #expect(named == Set(bad), "\(named.symmetricDifference(Set(bad)))")
        for (file, reason) in [("empty.png", "empty file"), ("truncated.png", "truncated"), ("truncated.jpg", "Premature end"),
                               ("notes.jpg", "not a PNG or JPEG"), ("jpeg-named.png", "wrong extension"), ("animation.gif", "unsupported image format"),
                               ("twelve-bit.jpg", "Unsupported JPEG data precision 12"), ("huge.png", "more than the limit"),
                               ("dangling.png", "dangling symbolic link"), ("loop", "symbolic link loop")] {
            #expect(errors.contains { $0.contains(file + ": ") && $0.contains(reason) }, "\(file): \(reason)")
        }
        #expect(r.stderr.contains("20 files skipped"))
    }

    @Test("a clean folder: exit code 0, JSON lines with the top-k")
    func jsonLines() throws {
        let (images, _) = try badFolder()
        let out = images + "/../p.jsonl"
        let r = try kiln("infer", "models/resnet8-mnist.kiln", images + "/b", "--output", out, "--top-k", "2")
        #expect(r.status == 0, "\(r.stderr)")
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 33)
        for line in lines {
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            #expect((object["path"] as! String).hasPrefix(images + "/b/digit"))
            #expect((object["top"] as! [[String: Any]]).count == 2)
        }
    }

    @Test("an unreadable file is skipped as 'permission denied' (as root, the run drops to user nobody, since root reads any file)")
    func unreadable() throws {
        let dir = try scratch("unreadable")
        let fm = FileManager.default
        let images = dir.appendingPathComponent("images").path
        try fm.createDirectory(atPath: images, withIntermediateDirectories: true)
        // A good PNG from the bad-folder script's generator, and a copy nobody may read.
        let (folder, _) = try badFolder()
        let good = try Data(contentsOf: URL(fileURLWithPath: folder + "/a/digit003.png"))
        try good.write(to: URL(fileURLWithPath: images + "/good.png"))
        try good.write(to: URL(fileURLWithPath: images + "/locked.png"))
        chmod(images + "/locked.png", 0)
        // The binary and model copied where user nobody can reach them; the folder writable.
        let binary = dir.appendingPathComponent("kiln").path, model = dir.appendingPathComponent("m.kiln").path
        try fm.copyItem(atPath: kilnBinary.path, toPath: binary)
        try fm.copyItem(atPath: repositoryRoot.appendingPathComponent("models/resnet8-mnist.kiln").path, toPath: model)
        for (path, mode) in [(dir.path, 0o777), (images, 0o755), (binary, 0o755), (model, 0o644)] { chmod(path, mode_t(mode)) }
        let out = dir.appendingPathComponent("out.csv").path
        let args = ["infer", model, images, "--output", out]
        let r = geteuid() == 0
            ? try run(URL(fileURLWithPath: "/usr/bin/setpriv"), ["--reuid=65534", "--regid=65534", "--clear-groups", binary] + args)
            : try run(URL(fileURLWithPath: binary), args)
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr.contains("locked.png: permission denied"), "\(r.stderr)")
        let rows = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
        #expect(rows.count == 2 && rows[1].hasPrefix(images + "/good.png"))
    }

    @Test("usage errors are one line and exit 1", arguments: [
        (["infer", "models/resnet8-mnist.kiln", "/nonexistent-folder"], "/nonexistent-folder"),
        (["infer", "models/resnet8-mnist.kiln", "models", "--output", "x.txt"], "must be .csv or .jsonl"),
        (["eval", "models/resnet8-mnist.kiln", "models"], "no class subfolders"),
        (["preprocess", "--raw", "README.md", "-o", "/tmp/kiln-never.npy"], "not a PNG or JPEG"),
    ])
    func usage(_ args: [String], _ message: String) throws {
        let r = try run(kilnBinary, args)
        #expect(r.status == 1)
        #expect(r.stderr.contains(message), "\(r.stderr)")
    }
}

@Suite("Training on an image folder", .serialized)
struct FolderTrainingTests {
    @Test("kiln train --data takes a class-per-subfolder folder of PNGs; bad files are skipped and named; eval reads the same folder")
    func trainOnFolder() throws {
        let dir = try scratch("folder-train")
        let images = dir.appendingPathComponent("digits").path
        let w = try run(python, [repositoryRoot.appendingPathComponent("scripts/demo_check.py").path, "pngs",
                                 repositoryRoot.appendingPathComponent("data/mnist5k/mnist5k-images-idx3-ubyte.gz").path, "450", images])
        try #require(w.status == 0, "\(w.stderr)")
        try Data("not a png".utf8).write(to: URL(fileURLWithPath: images + "/3/broken.png"))
        let out = dir.appendingPathComponent("run").path
        let r = try kiln("train", "--model", "models/resnet8-mnist.kiln", "--data", images, "--val", images, "--epochs", "1", "--out", out)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("data: 500 training images of [1, 28, 28], 10 classes, per class [50, 50, 50, 50, 50, 50, 50, 50, 50, 50]"), "\(r.stdout)")
        #expect(r.stderr.contains("broken.png: not a PNG or JPEG file"))
        let e = try kiln("eval", out + "/model.onnx", images, "--report", dir.appendingPathComponent("eval.json").path)
        #expect(e.status == 2, "the broken file is reported: \(e.stderr)")
        #expect(e.stdout.contains("500 images in 10 classes"))
        let metrics = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8)
        let val = (try JSONSerialization.jsonObject(with: Data(metrics.utf8)) as! [String: Any])["val"] as! [String: Any]
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("eval.json"))) as! [String: Any]
        #expect(report["top1"] as? Double == val["top1"] as? Double)
    }
}
