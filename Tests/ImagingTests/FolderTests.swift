import Foundation
import Imaging
import Testing

@Suite("Folder walks and the compact path list")
struct FolderTests {
    /// Names chosen so that folder-then-name order and full-path byte order differ ('-' and
    /// '.' sort before '/'), with non-ASCII and spaces.
    static let tree = ["a/b/x.png", "a/b-c/y.png", "a/b.d/z.jpg", "a/b/sub/w.png", "a/ä/q.JPEG", "a/b/ x.png", "top.png", "a/b/y.png"]

    @Test("walk lists image files in full-path byte order, as Swift's own sort of the strings has them")
    func walkOrder() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-folder-\(getpid())").path
        try? FileManager.default.removeItem(atPath: root)
        defer { try? FileManager.default.removeItem(atPath: root) }
        for p in Self.tree + ["a/b/notes.txt", "a/.hidden/h.png"] {
            let url = URL(fileURLWithPath: root + "/" + p)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data([1]).write(to: url)
        }
        let listing = try FolderListing.walk(root)
        let want = Self.tree.map { root + "/" + $0 }.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        #expect(Array(listing.files) == want)
        #expect(listing.ignored == 1)
        // The same root given with a trailing slash: no doubled separator.
        #expect(Array(try FolderListing.walk(root + "/").files) == want)
    }

    @Test("a path list built from strings gives them back; appending keeps both lists' paths in order")
    func pathList() {
        let first = ["/d/one.png", "/d/two.png", "/e/f/three.jpg", "name-only.png"], second = ["/g/four.png", "/d/five.png"]
        var list = PathList(first)
        #expect(Array(list) == first)
        #expect(list.count == 4 && list[2] == "/e/f/three.jpg")
        list.append(contentsOf: PathList(second))
        #expect(Array(list) == first + second)
        #expect(Array(PathList([String]())).isEmpty)
    }
}
