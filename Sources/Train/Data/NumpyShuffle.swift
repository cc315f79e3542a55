/// numpy's legacy global generator (`np.random.seed(s)`, `np.random.shuffle`): MT19937
/// (Matsumoto & Nishimura 1998) seeded by its standard `init_genrand`, and the
/// Fisher–Yates shuffle that draws j ∈ [0, i] by masked rejection sampling of 32-bit
/// outputs. The LDAM-DRW reference code picks its long-tailed subsets with it, so using it
/// reproduces their images, not just their counts.
public struct NumpyLegacyRandom: Sendable {
    var key = [UInt32](repeating: 0, count: 624)
    var position = 624

    public init(seed: UInt32) {
        key[0] = seed
        for i in 1..<624 { key[i] = 1_812_433_253 &* (key[i - 1] ^ (key[i - 1] >> 30)) &+ UInt32(i) }
    }

    mutating func twist() {
        for i in 0..<624 {
            let y = (key[i] & 0x8000_0000) | (key[(i + 1) % 624] & 0x7FFF_FFFF)
            key[i] = key[(i + 397) % 624] ^ (y >> 1) ^ (y & 1 == 0 ? 0 : 0x9908_B0DF)
        }
        position = 0
    }

    public mutating func nextUInt32() -> UInt32 {
        if position >= 624 { twist() }
        var y = key[position]
        position += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    /// A uniform integer in 0...max (numpy's `random_interval` for max < 2³²).
    public mutating func interval(_ max: Int) -> Int {
        guard max > 0 else { return 0 }
        var mask = UInt32(max)
        mask |= mask >> 1; mask |= mask >> 2; mask |= mask >> 4; mask |= mask >> 8; mask |= mask >> 16
        var v = nextUInt32() & mask
        while v > UInt32(max) { v = nextUInt32() & mask }
        return Int(v)
    }

    /// `np.random.shuffle` of a one-dimensional array.
    public mutating func shuffle<T>(_ a: inout [T]) {
        guard a.count > 1 else { return }
        for i in stride(from: a.count - 1, to: 0, by: -1) { a.swapAt(i, interval(i)) }
    }
}
