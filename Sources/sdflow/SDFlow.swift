import ArgumentParser
import Foundation
import Diffusion
import Nodes
import Tensor
import Workflow

@main
struct SDFlow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sdflow",
        abstract: "Runs SDXL / SDXL-Lightning workflows written as YAML node graphs, on the CPU.",
        version: "0.1.0",
        subcommands: [Run.self, Validate.self, Watch.self, ListNodes.self, Convert.self, Bench.self]
    )
}

/// Exit codes: 0 success, 1 a node failed, 2 invalid workflow or usage, 130 interrupted.
enum Exit {
    static let nodeFailed: Int32 = 1
    static let invalid: Int32 = 2
    static let interrupted: Int32 = 130
}

struct WorkflowOptions: ParsableArguments {
    @Argument(help: "The workflow YAML file.")
    var workflow: String

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a literal input: node.input=value (repeatable).", valueName: "id.input=value"))
    var sets: [String] = []

    @Option(name: .customLong("models"), help: ArgumentHelp("Folder to search for model files (repeatable; also SDFLOW_MODELS, ':'-separated).", valueName: "dir"))
    var models: [String] = []

    var modelDirectories: [URL] {
        var dirs = models.map { URL(fileURLWithPath: $0) }
        if let env = ProcessInfo.processInfo.environment["SDFLOW_MODELS"] {
            dirs += env.split(separator: ":").map { URL(fileURLWithPath: String($0)) }
        }
        return dirs
    }

    /// Loads, overrides and validates; prints every problem and returns nil when invalid.
    func loadGraph(registry: NodeRegistry) -> Graph? {
        do {
            var doc = try WorkflowDocument.load(path: workflow)
            for s in sets { try doc.applyOverride(s) }
            let base = URL(fileURLWithPath: workflow).deletingLastPathComponent()
            return try Validator.validate(doc, registry: registry, files: FileSearch(baseDirectory: base, modelDirectories: modelDirectories))
        } catch let f as ValidationFailure {
            for d in f.diagnostics { stderrLine("\(d)") }
            stderrLine("\(workflow): \(f.diagnostics.count) problem\(f.diagnostics.count == 1 ? "" : "s"); nothing was run")
            return nil
        } catch {
            stderrLine("\(workflow): \(error)")
            return nil
        }
    }
}

struct RunOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Folder for output images (default: ./output).", valueName: "dir"))
    var output: String = "output"

    @Option(help: ArgumentHelp("Disk cache folder (default: $SDFLOW_CACHE, else $XDG_CACHE_HOME/sdflow or ~/.cache/sdflow).", valueName: "dir"))
    var cache: String?

    @Flag(help: "Do not read or write the disk cache.")
    var noCache = false

    @Option(help: ArgumentHelp("Write a JSON report of the run to this file.", valueName: "file"))
    var report: String?

    @Flag(name: .shortAndLong, help: "Print nothing but errors.")
    var quiet = false

    @Option(help: ArgumentHelp("Compute precision of the UNet, ControlNet, text encoders and VAE: fp32 (default: ComfyUI's numbers), bf16 (AMX / AVX512-BF16 GEMMs with fp32 accumulation, several times faster), auto (bf16 where the CPU has AMX).", valueName: "fp32|bf16|auto"))
    var precision: String = "fp32"

    @Flag(help: "Drop a model's bf16 weight packings after every node that uses it (run already drops them after the last one; watch keeps them for the next re-run), so a bf16 pipeline holds one model's packed weights at a time; a model used again is packed again.")
    var lowMemory = false

    /// Applies --precision and the packed-weight policy (process-wide): `watching` keeps packings for
    /// re-runs unless --low-memory.
    func applyPrecision(watching: Bool = false) throws {
        ModelMemory.policy = lowMemory ? .afterEachUse : (watching ? .keep : .afterLastUse)
        guard let p = ComputePrecision.parse(precision) else {
            stderrLine("error: --precision must be fp32, bf16 or auto (got '\(precision)')")
            throw ExitCode(Exit.invalid)
        }
        if p == .bf16 && !BF16Backend.available {
            stderrLine("warning: this CPU has no AMX or AVX512-BF16; computing in fp32")
        }
        ComputePrecision.current = p
    }

    /// The executor's signature salt for the precision in effect (after `applyPrecision`): bf16
    /// results (which also depend on the tier: AMX and AVX512-BF16 sum in different orders) must
    /// not be served to an fp32 run from the cache, nor the other way round.
    var cacheSalt: String {
        ComputePrecision.current == .bf16 && BF16Backend.available ? "precision=bf16 tier=\(BF16Backend.tier)" : ""
    }

    var cacheDirectory: URL? {
        if noCache { return nil }
        if let cache { return URL(fileURLWithPath: cache) }
        let env = ProcessInfo.processInfo.environment
        if let c = env["SDFLOW_CACHE"], !c.isEmpty { return URL(fileURLWithPath: c) }
        if let x = env["XDG_CACHE_HOME"], !x.isEmpty { return URL(fileURLWithPath: x).appendingPathComponent("sdflow") }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/sdflow")
    }
}

func stderrLine(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}

/// Runs a validated graph with progress output, the report, and the exit code.
func execute(_ graph: Graph, executor: Executor, options: RunOptions, token: CancellationToken) -> Int32 {
    let outDir = URL(fileURLWithPath: options.output)
    do {
        try FileManager.default.createDirectory(at: outDir, withIntermediateDirectories: true)
    } catch {
        stderrLine("error: cannot create the output folder '\(outDir.path)': \(error.localizedDescription)")
        return Exit.invalid
    }
    let reporter = ConsoleReporter(quiet: options.quiet)
    let start = Date()
    let result = executor.run(graph, options: ExecutionOptions(outputDirectory: outDir), observer: reporter, cancellation: token)
    reporter.finish()
    for r in result.records where r.status == .failed {
        let loc = graph.nodes[r.id]?.location.description ?? graph.source.path
        stderrLine("\(loc): node '\(r.id)' (\(r.type)): \(r.message ?? "failed")")
    }
    if let path = options.report {
        let url = URL(fileURLWithPath: path)
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        do {
            try result.reportJSON().write(to: tmp)
            guard rename(tmp.path, url.path) == 0 else { throw CocoaError(.fileWriteUnknown) }
        } catch {
            try? FileManager.default.removeItem(at: tmp)
            stderrLine("error: cannot write the report '\(path)'")
        }
    }
    if !options.quiet {
        let executed = result.records.filter { $0.status == .executed }.count
        let cached = result.records.filter { $0.status == .cached }.count
        let failed = result.records.filter { $0.status == .failed }.count
        stderrLine("done in \(String(format: "%.2f", Date().timeIntervalSince(start)))s: \(executed) executed, \(cached) cached"
                   + (failed > 0 ? ", \(failed) failed" : ""))
        for o in result.outputs { print(o.path) }
    }
    if result.cancelled { stderrLine("interrupted"); return Exit.interrupted }
    return result.failed ? Exit.nodeFailed : 0
}

/// Ctrl-C: the first stops at the next safe point, the second exits at once.
final class InterruptHandler: @unchecked Sendable {
    let token = CancellationToken()
    private var source: DispatchSourceSignal?
    private var count = 0
    private let lock = NSLock()

    init() {
        signal(SIGINT, SIG_IGN)
        let s = DispatchSource.makeSignalSource(signal: SIGINT, queue: DispatchQueue(label: "sdflow.sigint"))
        s.setEventHandler { [weak self] in self?.interrupted() }
        s.resume()
        source = s
    }

    var onInterrupt: (@Sendable () -> Void)?

    private func interrupted() {
        let n = lock.withLock { count += 1; return count }
        if n == 1 {
            stderrLine("\nstopping at the next safe point (Ctrl-C again to quit now)")
            token.cancel()
            onInterrupt?()
        } else {
            exit(Exit.interrupted)
        }
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a workflow.")
    @OptionGroup var workflow: WorkflowOptions
    @OptionGroup var runOptions: RunOptions

    func run() throws {
        let registry = builtinRegistry()
        try runOptions.applyPrecision()
        guard let graph = workflow.loadGraph(registry: registry) else { throw ExitCode(Exit.invalid) }
        let interrupts = InterruptHandler()
        let executor = Executor(registry: registry, disk: runOptions.cacheDirectory.map { DiskCache(directory: $0) },
                                salt: runOptions.cacheSalt)
        let code = execute(graph, executor: executor, options: runOptions, token: interrupts.token)
        if code != 0 { throw ExitCode(code) }
    }
}

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check a workflow without running it.")
    @OptionGroup var workflow: WorkflowOptions

    func run() throws {
        guard let graph = workflow.loadGraph(registry: builtinRegistry()) else { throw ExitCode(Exit.invalid) }
        print("\(workflow.workflow): valid; \(graph.order.count) node\(graph.order.count == 1 ? "" : "s") to run for \(graph.outputs.count) output\(graph.outputs.count == 1 ? "" : "s")")
    }
}

struct Watch: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a workflow, then again on every save, recomputing only what changed.")
    @OptionGroup var workflow: WorkflowOptions
    @OptionGroup var runOptions: RunOptions

    @Option(help: "Seconds between checks of the file.")
    var interval: Double = 0.5

    func run() throws {
        let registry = builtinRegistry()
        try runOptions.applyPrecision(watching: true)
        let executor = Executor(registry: registry, memory: MemoryCache(), disk: runOptions.cacheDirectory.map { DiskCache(directory: $0) },
                                salt: runOptions.cacheSalt)
        var lastStamp = ""
        stderrLine("watching \(workflow.workflow) (Ctrl-C to stop)")
        while true {
            let a = try? FileManager.default.attributesOfItem(atPath: workflow.workflow)
            let stamp = "\((a?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)|\((a?[.size] as? NSNumber)?.intValue ?? -1)"
            if stamp != lastStamp {
                lastStamp = stamp
                if let graph = workflow.loadGraph(registry: registry) {
                    let interrupts = InterruptHandler()
                    let code = execute(graph, executor: executor, options: runOptions, token: interrupts.token)
                    if code == Exit.interrupted { throw ExitCode(code) }
                    signal(SIGINT, SIG_DFL)
                }
                stderrLine("waiting for changes to \(workflow.workflow)")
            }
            usleep(UInt32(max(0.05, interval) * 1e6))
        }
    }
}

struct ListNodes: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "nodes", abstract: "List every node type with its inputs and outputs.")
    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let defs = builtinRegistry().definitions
        if json {
            let arr: [[String: Any]] = defs.map { d in
                [
                    "name": d.name, "aliases": d.aliases, "category": d.category, "description": d.summary,
                    "output_node": d.isOutput,
                    "inputs": d.inputs.map { i -> [String: Any] in
                        var o: [String: Any] = ["name": i.name, "type": i.type.name, "required": i.isRequired]
                        if let v = i.defaultValue { o["default"] = v.jsonObject }
                        if let v = i.min { o["min"] = v }
                        if let v = i.max { o["max"] = v }
                        if let c = i.choices { o["choices"] = c }
                        if let f = i.file { o["file_folders"] = f.folders }
                        if !i.help.isEmpty { o["help"] = i.help }
                        return o
                    },
                    "outputs": d.outputs.map { ["name": $0.name, "type": $0.type.name] },
                ]
            }
            let data = try JSONSerialization.data(withJSONObject: arr, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        for d in defs {
            let alias = d.aliases.isEmpty ? "" : " (alias: \(d.aliases.joined(separator: ", ")))"
            print("\(d.name)\(alias)\(d.isOutput ? " [output]" : "")")
            if !d.summary.isEmpty { print("  \(d.summary)") }
            for i in d.inputs {
                var s = "  in  \(i.name): \(i.type)"
                if let c = i.choices { s += " one of [\(c.joined(separator: ", "))]" }
                if let v = i.defaultValue { s += " = \(v.jsonObject)" }
                if i.min != nil || i.max != nil { s += " in \(i.min.map { "\($0)" } ?? "")...\(i.max.map { "\($0)" } ?? "")" }
                if i.file != nil { s += " (file)" }
                if i.isOptional { s += " (optional)" }
                print(s)
            }
            for o in d.outputs { print("  out \(o.name): \(o.type)") }
        }
    }
}

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a workflow (e.g. ComfyUI API-format JSON) as sdflow YAML.")
    @Argument(help: "The workflow file (ComfyUI \"Save (API)\" JSON or YAML).")
    var workflow: String

    func run() throws {
        do {
            let doc = try WorkflowDocument.load(path: workflow)
            print(doc.namingLinks(with: builtinRegistry()).yamlText(), terminator: "")
        } catch let f as ValidationFailure {
            for d in f.diagnostics { stderrLine("\(d)") }
            throw ExitCode(Exit.invalid)
        }
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks: kernels, or full-size SDXL components with random weights built in memory.",
        discussion: "sdflow bench kernels | unet | vae | clip | pipeline  [--width W --height H] [--runs N] [--json]")
    @Argument(help: "What to measure: kernels, unet, vae, clip, pipeline.")
    var what: String = "kernels"
    @Option(help: "Image width (unet, vae, pipeline).")
    var width: Int = 1024
    @Option(help: "Image height.")
    var height: Int = 1024
    @Option(help: "Timed runs per component (the median is reported).")
    var runs: Int = 3
    @Option(help: "Compute precision: fp32, bf16 or auto.")
    var precision: String = "fp32"
    @Flag(help: "One JSON object per line.")
    var json = false
    @Flag(help: "Fewer repetitions (kernels).")
    var quick = false
    @Option(help: "Channels (bench conv).")
    var channels: Int = 128
    @Option(help: "A single-file SDXL checkpoint (bench load).")
    var file: String?

    func run() throws {
        guard let p = ComputePrecision.parse(precision) else {
            stderrLine("error: --precision must be fp32, bf16 or auto")
            throw ExitCode(Exit.invalid)
        }
        ComputePrecision.current = p
        guard width % 8 == 0, height % 8 == 0, (width >= 64 && height >= 64) || what == "conv" else {
            stderrLine("error: --width and --height must be multiples of 8, at least 64")
            throw ExitCode(Exit.invalid)
        }
        let threads = ProcessInfo.processInfo.activeProcessorCount
        let log: (String) -> Void = { if !json { stderrLine($0) } }
        let n = max(1, runs)
        let result: ModelBench.Result
        switch what {
        case "kernels":
            if p == .bf16 {
                // bf16 GEMM / conv / attention against fp32 sgemm and the bare AMX rate, same run.
                runBF16Benchmarks { print($0) }
            } else {
                runKernelBenchmarks(json: json, quick: quick) { print($0) }
            }
            return
        case "load":
            guard let file else {
                stderrLine("error: bench load needs --file CHECKPOINT")
                throw ExitCode(Exit.invalid)
            }
            print(try ModelBench.load(file: file, json: json))
            return
        case "conv":
            // A single 3x3 conv, C -> C at width x height (one image), timed: --width/--height and --channels.
            let x = try ModelBench.randomTensor([1, channels, height, width], seed: 1)
            let w = try ModelBench.randomTensor([channels, channels, 3, 3], seed: 2, scale: 0.05)
            let packed = p == .bf16 && BF16Backend.available ? try PackedBF16Weight(w) : nil
            var times: [Double] = []
            for _ in 0..<n {
                let t0 = DispatchTime.now().uptimeNanoseconds
                if let packed {
                    _ = try Ops.conv2dBF16(x, weight: packed, kernel: (3, 3), bias: nil, padding: Padding2D(1))
                } else {
                    _ = try Ops.conv2d(x, weight: w, padding: Padding2D(1))
                }
                times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
            let flops = 2.0 * Double(channels * channels * 9) * Double(width * height)
            let med = times.sorted()[times.count / 2]
            print(String(format: "conv3x3 %d->%d @%dx%d %@  median %.4fs  %.1f GFLOP/s", channels, channels, width, height,
                         (packed == nil ? "fp32" : "bf16") as NSString, med, flops / med / 1e9))
            return
        case "accuracy":
            print(try ModelBench.bf16Accuracy(width: width, height: height, json: json, log: log))
            return
        case "unet": result = try ModelBench.unet(width: width, height: height, runs: n, log: log)
        case "vae": result = try ModelBench.vae(width: width, height: height, runs: n, log: log)
        case "clip": result = try ModelBench.clip(runs: n, log: log)
        case "pipeline": result = try ModelBench.pipeline(width: width, height: height, runs: n, log: log)
        default:
            stderrLine("error: unknown benchmark '\(what)' (available: kernels, unet, vae, clip, pipeline, load)")
            throw ExitCode(Exit.invalid)
        }
        print(ModelBench.report(result, json: json, threads: threads, precision: p == .bf16 && BF16Backend.available ? "bf16" : "fp32"))
    }
}
