import Testing
import Train

/// Expected values are the lists printed in ../shared/LDAM-DRW.md (from the paper and its
/// reference implementation), not Kiln's output.
@Suite("Long-tailed subsets, class-balanced weights and LDAM margins")
struct LongTailTests {
    @Test("CIFAR-10 exp ratio 100")
    func cifar10Exp100() {
        let c = LongTail.counts(classes: 10, nMax: 5000, profile: .exp, ratio: 100)
        #expect(c == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50])
        #expect(c.reduce(0, +) == 12_406)
    }

    @Test("subset sizes: CIFAR-10 exp 10, step 100; CIFAR-100 exp 100")
    func sizes() {
        #expect(LongTail.counts(classes: 10, nMax: 5000, profile: .exp, ratio: 10).reduce(0, +) == 20_431)
        #expect(LongTail.counts(classes: 10, nMax: 5000, profile: .step, ratio: 100).reduce(0, +) == 25_250)
        #expect(LongTail.counts(classes: 100, nMax: 500, profile: .exp, ratio: 100).reduce(0, +) == 10_847)
    }

    @Test("the MNIST demo split: 400 per class, ratio 100")
    func mnistDemo() {
        // ../shared/data/mnist5k/README.md
        #expect(LongTail.counts(classes: 10, nMax: 400, profile: .exp, ratio: 100) == [400, 239, 143, 86, 51, 30, 18, 11, 6, 4])
    }

    @Test("LDAM margins for CIFAR-10 LT-100")
    func margins() {
        let m = LongTail.ldamMargins(counts: [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50], maxMargin: 0.5)
        let expected = [0.1581, 0.1797, 0.2042, 0.2321, 0.2638, 0.2998, 0.3407, 0.3872, 0.4405, 0.5]
        for (a, b) in zip(m, expected) { #expect(abs(a - b) < 5e-5) }
    }

    @Test("DRW class-balanced weights for CIFAR-10 LT-100 (β = 0.9999), summing to 10")
    func weights() {
        let w = LongTail.classBalancedWeights(counts: [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50], beta: 0.9999)
        let expected = [0.0506, 0.0769, 0.1211, 0.195, 0.3188, 0.5246, 0.8683, 1.4426, 2.4092, 3.9927]
        for (a, b) in zip(w, expected) { #expect(abs(a - b) < 5e-5) }
        #expect(abs(w.reduce(0, +) - 10) < 1e-9)
    }
}
