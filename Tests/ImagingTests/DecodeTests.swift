import Foundation
import Graph
import Imaging
import Testing

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let python = URL(fileURLWithPath: (ProcessInfo.processInfo.environment["KILN_VENV"] ?? NSHomeDirectory() + "/.cache/kiln/venv") + "/bin/python")

/// The corpus of scripts/image_corpus.py (PNG written byte by byte for every colour type,
/// bit depth and interlacing; JPEG by Pillow), with Pillow's decode of each file as the
/// expected pixels.
let corpus: Result<(String, [String]), Error> = Result {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-image-corpus-\(getpid())").path
    let p = Process()
    p.executableURL = python
    p.arguments = [repositoryRoot.appendingPathComponent("scripts/image_corpus.py").path, dir]
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else { throw ImageError(path: dir, reason: "image_corpus.py failed") }
    let names = try String(contentsOfFile: dir + "/corpus.txt", encoding: .utf8).split(separator: "\n").map(String.init)
    return (dir, names)
}

@Suite("PNG and JPEG decoding against Pillow")
struct DecodeTests {
    @Test("the corpus covers every PNG colour type and bit depth, interlaced and not, and baseline, progressive and grey JPEG")
    func coverage() throws {
        let (_, names) = try corpus.get()
        for color in [0, 2, 3, 4, 6] {
            let depths = [0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16]][color]!
            for d in depths {
                #expect(names.contains("png_c\(color)_d\(d).png"))
                #expect(names.contains("png_c\(color)_d\(d)_i.png"))
            }
        }
        for n in ["jpeg_baseline.jpg", "jpeg_progressive.jpg", "jpeg_grey.jpg", "jpeg_cmyk.jpg"] { #expect(names.contains(n)) }
        for o in 2...8 { #expect(names.contains("jpeg_orientation_\(o).jpg")) }
    }

    /// Kiln's decode and Pillow's pixels of every corpus file ending in `suffix`.
    func eachDecoded(_ suffix: String, _ body: (String, Image, TensorData) throws -> Void) throws {
        let (dir, names) = try corpus.get()
        for name in names where name.hasSuffix(suffix) {
            let image = try ImageDecoder.decode(path: "\(dir)/\(name)")
            let expected = try NPY.read(path: "\(dir)/\(name).npy")
            try #require([image.height, image.width, image.channels] == expected.shape, "\(name)")
            try body(name, image, expected)
        }
    }

    @Test("every PNG decodes to exactly Pillow's pixels")
    func png() throws {
        try eachDecoded(".png") { name, image, expected in
            let same = image.pixels == expected.bytes
            #expect(same, "\(name): pixels differ from Pillow's")
        }
    }

    @Test("every JPEG decodes within a mean of 1 grey level per channel of Pillow's decode (EXIF orientation applied as ImageOps.exif_transpose does)")
    func jpeg() throws {
        try eachDecoded(".jpg") { name, image, expected in
            for c in 0..<image.channels {
                var total = 0
                for i in 0..<(image.width * image.height) {
                    total += abs(Int(image.pixels[i * image.channels + c]) - Int(expected.bytes[i * image.channels + c]))
                }
                let mean = Double(total) / Double(image.width * image.height)
                #expect(mean <= 1, "\(name) channel \(c): mean absolute difference \(mean)")
            }
        }
    }

    @Test("channel conversion: grey → RGB copies, RGB → grey is ITU-R 601-2 luma as Pillow rounds it, alpha is dropped")
    func conversion() {
        let rgba = Image(width: 2, height: 1, channels: 4, pixels: [255, 0, 0, 9, 10, 200, 30, 255])
        let grey = rgba.converted(to: 1)
        // (299·R + 587·G + 114·B) / 1000: 76.245 → 76; 10·0.299 + 200·0.587 + 30·0.114 = 123.81 → 124.
        #expect(grey.pixels == [76, 124])
        #expect(rgba.converted(to: 3).pixels == [255, 0, 0, 10, 200, 30])
        #expect(grey.converted(to: 3).pixels == [76, 76, 76, 124, 124, 124])
    }

    @Test("bad files are errors with a reason, never a crash", arguments: [
        ([UInt8](), "empty file"),
        (Array("hello, this is text and not an image".utf8), "looks like text"),
        (Array("GIF89a".utf8) + [0, 0], "GIF"),
        ([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0], "PNG"),
        ([0xFF, 0xD8, 0xFF, 0xE0, 0, 16], "JPEG"),
    ])
    func badBytes(_ bytes: [UInt8], _ reason: String) {
        do {
            _ = try ImageDecoder.decode(bytes: bytes, name: "x")
            Issue.record("decoded garbage")
        } catch {
            #expect(error.reason.contains(reason), "\(error.reason)")
        }
    }

    @Test("truncated copies of every corpus file are refused, and a pixel limit stops oversized images")
    func truncatedAndBombs() throws {
        let (dir, names) = try corpus.get()
        for name in names {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(name)")))
            for cut in [bytes.count / 2, bytes.count - 20] {
                #expect(throws: ImageError.self, "\(name) cut at \(cut)") { try ImageDecoder.decode(bytes: Array(bytes.prefix(cut)), name: name) }
            }
            #expect(throws: ImageError.self) { try ImageDecoder.decode(bytes: bytes, name: name, pixelLimit: 100) }
        }
    }
}

@Suite("Resizing against Pillow")
struct ResizeTests {
    @Test("bilinear resampling (antialiased when shrinking) equals Pillow's resize of a float image within 1e-3",
          arguments: [(16, 20), (45, 37), (90, 50), (7, 60)])
    func resize(_ w: Int, _ h: Int) throws {
        let (dir, _) = try corpus.get()
        let source = try NPY.read(path: "\(dir)/resize_source.npy")
        let expected = try NPY.read(path: "\(dir)/resize_\(w)x\(h).npy")
        let got = Preprocessing.resample(source.floats, width: source.shape[1], height: source.shape[0], toWidth: w, toHeight: h)
        #expect(expected.shape == [h, w])
        let worst = zip(got, expected.floats).map { abs($0 - $1) }.max() ?? 1
        #expect(worst < 1e-3, "worst difference \(worst) grey levels")
    }
}
