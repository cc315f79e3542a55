import Foundation
import Graph
import Testing
import Train

/// RandAugment's operations against Pillow's, and its place in training (reproducible, and
/// covered by bit-identical resume in TrainCLITests).
@Suite("RandAugment against Pillow")
struct AugmentationTests {
    @Test("every operation, on grey and RGB images of odd sizes, both signs: equal to Pillow's within its rounding")
    func operationsMatchPillow() throws {
        try #require(FileManager.default.isExecutableFile(atPath: python.path), "no Python venv at \(python.path): run scripts/setup.sh")
        var state: UInt32 = 77
        func pixel() -> UInt8 { state = state &* 1_664_525 &+ 1_013_904_223; return UInt8(30 + (state >> 24) % 170) }
        var cases: [[String: Any]] = []
        for shape in [[1, 20, 20], [3, 19, 23]] {
            let count = shape.reduce(1, *)
            // A smooth pattern plus noise, so equalisation, contrast and sharpening have work.
            let input: [UInt8] = (0..<count).map { k in
                let x = k % shape[2], y = (k / shape[2]) % shape[1]
                return UInt8(min(255, Int(pixel()) / 3 + (x * 7 + y * 5) % 120))
            }
            for op in RandAugment.Op.allCases where op != .identity {
                for (level, sign) in [(0.7, 1.0), (0.9, -1.0)] {
                    var image = input, scratch = [UInt8](repeating: 0, count: count)
                    image.withUnsafeMutableBufferPointer { im in
                        scratch.withUnsafeMutableBufferPointer { sc in
                            RandAugment.apply(op, level: level, sign: sign, im.baseAddress!, channels: shape[0], height: shape[1], width: shape[2], scratch: sc.baseAddress!)
                        }
                    }
                    cases.append(["op": "\(op)", "level": level, "sign": sign, "shape": shape, "input": input.map(Int.init), "output": image.map(Int.init)])
                }
            }
        }
        let dir = try scratch("randaugment")
        let path = dir.appendingPathComponent("cases.json").path
        try JSONSerialization.data(withJSONObject: cases).write(to: URL(fileURLWithPath: path))
        let r = try run(python, [repositoryRoot.appendingPathComponent("scripts/randaugment_check.py").path, path])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.split(separator: "\n").count == cases.count)
    }

    @Test("the same seed gives the same augmented batch; the draws per image are as declared")
    func reproducible() throws {
        let set = ImageDataset(imageShape: [1, 8, 8], pixels: (0..<256).map { UInt8($0) }, labels: [0, 1, 0, 1], classes: 2)
        let aug = Augmentation(cropPadding: 1, flip: true, randAugment: RandAugment(ops: 2, magnitude: 9))
        let norm = Normalization(mean: [0.5], std: [0.25])
        func batch(_ seed: UInt64) -> ([Float], KilnRandom) {
            var rng = KilnRandom(seed: seed)
            var out = [Float](repeating: 0, count: 4 * 64)
            _ = out.withUnsafeMutableBufferPointer { set.batch([0, 1, 2, 3], augmentation: aug, normalization: norm, rng: &rng, into: $0.baseAddress!) }
            return (out, rng)
        }
        let (a, ra) = batch(9), (b, _) = batch(9), (c, _) = batch(10)
        #expect(a == b)
        #expect(a != c)
        var skipped = KilnRandom(seed: 9)
        for _ in 0..<(4 * aug.drawsPerImage) { _ = skipped.next() }
        #expect(skipped == ra, "a rank skipping drawsPerImage draws per image must land where the batch left the generator")
    }
}
