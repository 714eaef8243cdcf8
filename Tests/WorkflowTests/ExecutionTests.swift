import Foundation
import Testing
@testable import Workflow

@Suite struct ExecutionTests {
    let out = tempDir()

    func run(_ executor: Executor, _ g: Graph, observer: ExecutionObserver = SilentObserver()) -> RunResult {
        executor.run(g, options: ExecutionOptions(outputDirectory: out), observer: observer)
    }

    @Test func dependenciesRunFirst() throws {
        let reg = makeRegistry()
        let g = try graph("""
        nodes:
          s: {type: Sink, inputs: {value: $sum.sum}}
          sum: {type: Add, inputs: {a: $a.value, b: $b.value}}
          a: {type: Const, inputs: {value: 2}}
          b: {type: Const, inputs: {value: 5}}
        """, registry: reg)
        #expect(g.order.firstIndex(of: "sum")! > g.order.firstIndex(of: "a")!)
        let rec = RecordingObserver()
        let ex = Executor(registry: reg)
        let r = run(ex, g, observer: rec)
        var finished: [String] = []
        var started: [String] = []
        for e in rec.events {
            if case .nodeFinished(let id, _, _) = e { finished.append(id) }
            if case .nodeStarted(let id, _) = e { started.append(id) }
        }
        // Each node starts only after all of its inputs finished.
        let pos = { (id: String) in finished.firstIndex(of: id)! }
        #expect(started.firstIndex(of: "sum")! >= 0 && pos("a") < pos("sum") && pos("b") < pos("sum") && pos("sum") < pos("s"))
        #expect(r.executedIDs.sorted() == ["a", "b", "s", "sum"])
        let sig = Executor.signatures(g)["sum"]!
        guard case .int(7)? = ex.memory.get(sig)?.first else { Issue.record("sum"); return }
    }

    /// NodeContext.isLastUse: true only for the last taker of an upstream output to run.
    @Test func lastUseOfAnInput() throws {
        let reg = makeRegistry()
        let seen = Timeline()   // records (isLastUse("value"), isLastUse("tag")) as 1/0 in the span fields
        reg.register(NodeDefinition(name: "Use", inputs: [.link("value", .int), .link("after", .int, optional: true),
                                                         .int("tag", default: 0, min: 0, max: 100)],
                                    outputs: [OutputSpec("value", .int)]) { ctx in
            seen.record(ctx.nodeID, ctx.isLastUse("value") ? 1 : 0, ctx.isLastUse("tag") ? 1 : 0)
            return [.int(try ctx.int("value"))]
        })
        let g = try graph("""
        nodes:
          a: {type: Const, inputs: {value: 3}}
          early: {type: Use, inputs: {value: $a.value, tag: 1}}
          later: {type: Use, inputs: {value: $a.value, after: $early.value, tag: 2}}
          only: {type: Use, inputs: {value: $later.value}}
          s: {type: Sink, inputs: {value: $only.value}}
        """, registry: reg)
        let r = run(Executor(registry: reg), g)
        #expect(r.executedIDs.sorted() == ["a", "early", "later", "only", "s"])
        let e = try #require(seen.span("early")), l = try #require(seen.span("later")), o = try #require(seen.span("only"))
        #expect(e.0 == 0, "'later' still takes a.value after 'early'")
        #expect(l.0 == 1, "'early', the other taker of a.value, has finished")
        #expect(o.0 == 1, "the only taker of later.value")
        #expect(e.1 == 0 && l.1 == 0 && o.1 == 0, "a literal input is never a last use")
    }

    @Test func independentSlowNodesOverlap() throws {
        let tl = Timeline()
        let reg = makeRegistry(timeline: tl)
        let g = try graph("""
        nodes:
          k: {type: Const, inputs: {value: 1}}
          s1: {type: Slow, inputs: {value: $k.value, millis: 400}}
          s2: {type: Slow, inputs: {value: $k.value, millis: 400}}
          o1: {type: Sink, inputs: {value: $s1.value}}
          o2: {type: Sink, inputs: {value: $s2.value}}
        """, registry: reg)
        let r = Executor(registry: reg).run(g, options: ExecutionOptions(outputDirectory: out, maxConcurrent: 4))
        #expect(!r.failed)
        let a = try #require(tl.span("s1")), b = try #require(tl.span("s2"))
        #expect(a.0 < b.1 && b.0 < a.1, "s1 \(a) and s2 \(b) did not overlap")
    }

    @Test func failingBranchDoesNotStopIndependentOne() throws {
        let reg = makeRegistry()
        let g = try graph("""
        nodes:
          k: {type: Const, inputs: {value: 1}}
          bad: {type: Fail, inputs: {value: $k.value}}
          after: {type: Add, inputs: {a: $bad.value, b: $k.value}}
          o1: {type: Sink, inputs: {value: $after.sum}}
          good: {type: Add, inputs: {a: $k.value, b: $k.value}}
          o2: {type: Sink, inputs: {value: $good.sum}}
        """, registry: reg)
        let r = run(Executor(registry: reg), g)
        #expect(r.failed)
        #expect(r.record("bad")?.status == .failed)
        #expect(r.record("bad")?.message?.contains("deliberate failure") == true)
        #expect(r.record("after")?.status == .skipped)
        #expect(r.record("o1")?.status == .skipped)
        #expect(r.record("good")?.status == .executed)
        #expect(r.record("o2")?.status == .executed)
    }

    static let chain = """
    nodes:
      a: {type: Const, inputs: {value: 2}}
      b: {type: Const, inputs: {value: 3}}
      ab: {type: Add, inputs: {a: $a.value, b: $b.value}}
      sc: {type: Scale, inputs: {x: $ab.sum, factor: 1.5}}
      bb: {type: Add, inputs: {a: $b.value, b: $b.value}}
      o1: {type: Sink, inputs: {real: $sc.y}}
      o2: {type: Sink, inputs: {value: $bb.sum}}
    """

    @Test func unchangedRerunExecutesNothing() throws {
        let reg = makeRegistry()
        let ex = Executor(registry: reg)
        let first = run(ex, try graph(Self.chain, registry: reg))
        #expect(first.executedIDs.count == 7)
        let second = run(ex, try graph(Self.chain, registry: reg))
        #expect(second.executedIDs.isEmpty)
        #expect(second.records.allSatisfy { $0.status == .cached })
    }

    @Test func changedLiteralRerunsExactlyItsDescendants() throws {
        let reg = makeRegistry()
        let ex = Executor(registry: reg)
        _ = run(ex, try graph(Self.chain, registry: reg))
        let r = run(ex, try graph(Self.chain, registry: reg, sets: ["a.value=4"]))
        #expect(r.executedIDs.sorted() == ["a", "ab", "o1", "sc"])
        let r2 = run(ex, try graph(Self.chain, registry: reg, sets: ["a.value=4", "sc.factor=2"]))
        #expect(r2.executedIDs.sorted() == ["o1", "sc"])
    }

    @Test func touchingAFileInvalidatesItsReader() throws {
        let reg = makeRegistry()
        let dir = tempDir()
        let file = dir.appendingPathComponent("data.bin")
        try Data([1, 2, 3]).write(to: file)
        let yaml = """
        nodes:
          f: {type: FileSize, inputs: {path: data.bin}}
          k: {type: Const, inputs: {value: 1}}
          sum: {type: Add, inputs: {a: $f.size, b: $k.value}}
          o: {type: Sink, inputs: {value: $sum.sum}}
        """
        let ex = Executor(registry: reg)
        _ = run(ex, try graph(yaml, registry: reg, dir: dir))
        #expect(run(ex, try graph(yaml, registry: reg, dir: dir)).executedIDs.isEmpty)
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: 10)], ofItemAtPath: file.path)
        let r = run(ex, try graph(yaml, registry: reg, dir: dir))
        #expect(r.executedIDs.sorted() == ["f", "o", "sum"])
    }

    static let blobs = """
    nodes:
      k: {type: Const, inputs: {value: 5}}
      blob: {type: MakeBlob, inputs: {n: $k.value}}
      o: {type: Sink, inputs: {blob: $blob.blob}}
    """

    @Test func diskCacheSurvivesProcessesAndDamagedEntryIsRecomputed() throws {
        let reg = makeRegistry()
        let cacheDir = tempDir()
        let g = try graph(Self.blobs, registry: reg)
        let r1 = run(Executor(registry: reg, disk: DiskCache(directory: cacheDir)), g)
        #expect(r1.executedIDs.sorted() == ["blob", "k", "o"])
        // A new process: empty memory, same disk. Output nodes always run; the rest comes from disk.
        let r2 = run(Executor(registry: reg, disk: DiskCache(directory: cacheDir)), g)
        #expect(r2.executedIDs == ["o"])
        #expect(r2.record("blob")?.status == .cached)

        // Damage the blob's entry: flip one byte in the middle.
        let sig = Executor.signatures(g)["blob"]!
        let entry = cacheDir.appendingPathComponent("\(sig).sdfc")
        var bytes = try Data(contentsOf: entry)
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: entry)
        let rec = RecordingObserver()
        let ex3 = Executor(registry: reg, disk: DiskCache(directory: cacheDir))
        let r3 = run(ex3, g, observer: rec)
        #expect(r3.executedIDs.sorted() == ["blob", "o"])
        #expect(rec.events.contains { if case .warning(let m) = $0 { return m.contains("checksum mismatch") }; return false })
        guard case .object(let p)? = ex3.memory.get(sig)?.first, let blob = p as? Blob else { Issue.record("blob"); return }
        #expect(blob.numbers == [0, 1, 2, 3, 4])
        // And the entry was rewritten whole.
        let r4 = run(Executor(registry: reg, disk: DiskCache(directory: cacheDir)), g)
        #expect(r4.executedIDs == ["o"])
    }

    /// Results computed under other settings (the executor's salt, e.g. bf16 precision) are never
    /// taken from the disk cache; the same salt again finds them.
    @Test func saltSeparatesCachedResults() throws {
        let reg = makeRegistry()
        let cacheDir = tempDir()
        let g = try graph(Self.blobs, registry: reg)
        #expect(Executor.signatures(g) == Executor.signatures(g, salt: ""))
        #expect(Executor.signatures(g)["blob"] != Executor.signatures(g, salt: "precision=bf16 tier=2")["blob"])
        _ = run(Executor(registry: reg, disk: DiskCache(directory: cacheDir)), g)
        let salted = run(Executor(registry: reg, disk: DiskCache(directory: cacheDir), salt: "precision=bf16 tier=2"), g)
        #expect(salted.executedIDs.sorted() == ["blob", "k", "o"])
        let again = run(Executor(registry: reg, disk: DiskCache(directory: cacheDir), salt: "precision=bf16 tier=2"), g)
        #expect(again.executedIDs == ["o"])
        let plain = run(Executor(registry: reg, disk: DiskCache(directory: cacheDir)), g)
        #expect(plain.executedIDs == ["o"])
    }

    @Test func truncatedEntryIsRecomputed() throws {
        let reg = makeRegistry()
        let cacheDir = tempDir()
        let g = try graph(Self.blobs, registry: reg)
        _ = run(Executor(registry: reg, disk: DiskCache(directory: cacheDir)), g)
        let entry = cacheDir.appendingPathComponent("\(Executor.signatures(g)["blob"]!).sdfc")
        let bytes = try Data(contentsOf: entry)
        try bytes.prefix(bytes.count - 5).write(to: entry)
        let r = run(Executor(registry: reg, disk: DiskCache(directory: cacheDir)), g)
        #expect(r.record("blob")?.status == .executed)
    }

    @Test func cancellationSkipsWhatIsLeft() throws {
        let reg = makeRegistry()
        let g = try graph(Self.chain, registry: reg)
        let token = CancellationToken()
        token.cancel()
        let r = Executor(registry: reg).run(g, options: ExecutionOptions(outputDirectory: out), cancellation: token)
        #expect(r.cancelled)
        #expect(r.executedIDs.isEmpty)
        #expect(r.records.allSatisfy { $0.status == .skipped })
    }

    @Test func reportJSONHasTheDocumentedShape() throws {
        let reg = makeRegistry()
        let r = run(Executor(registry: reg), try graph(Self.chain, registry: reg))
        let obj = try JSONSerialization.jsonObject(with: r.reportJSON()) as? [String: Any]
        let nodes = obj?["nodes"] as? [[String: Any]]
        #expect(nodes?.count == 7)
        #expect(nodes?.allSatisfy { $0["id"] is String && $0["type"] is String && $0["status"] as? String == "executed" && $0["seconds"] is Double } == true)
        #expect(obj?["outputs"] is [Any])
    }

    @Test func sha256KnownVectors() {
        #expect(SHA256.hash("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = String(repeating: "a", count: 1000)
        var h = SHA256()
        Data(long.utf8).withUnsafeBytes { h.update($0) }
        #expect(SHA256.hex(h.finalize()) == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }
}
