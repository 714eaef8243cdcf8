import Foundation

public enum Resolution: Sendable {
    case success(URL)
    /// The places searched.
    case failure([String])
}

/// Where model and input files are looked for.
public struct FileSearch: Sendable {
    /// The workflow file's folder: relative names resolve here first.
    public var baseDirectory: URL
    /// `--models DIR` and `SDFLOW_MODELS` folders, searched in order (with ComfyUI sub-folders).
    public var modelDirectories: [URL]
    public init(baseDirectory: URL, modelDirectories: [URL]) {
        self.baseDirectory = baseDirectory
        self.modelDirectories = modelDirectories
    }

    /// Returns the resolved URL or the list of places searched.
    public func resolve(_ name: String, role: FileRole) -> Resolution {
        let fm = FileManager.default
        func ok(_ url: URL) -> Bool {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: url.path, isDirectory: &isDir) else { return false }
            return role.allowsDirectory || !isDir.boolValue
        }
        var tried: [String] = []
        if name.hasPrefix("/") {
            let u = URL(fileURLWithPath: name)
            return ok(u) ? .success(u.standardizedFileURL) : .failure([name])
        }
        var candidates = [baseDirectory.appendingPathComponent(name)]
        for dir in modelDirectories {
            candidates.append(dir.appendingPathComponent(name))
            for f in role.folders { candidates.append(dir.appendingPathComponent(f).appendingPathComponent(name)) }
        }
        for c in candidates {
            if ok(c) { return .success(c.standardizedFileURL) }
            tried.append(c.path)
        }
        return .failure(tried)
    }
}

/// A resolved input of a validated node.
public enum BoundInput: Sendable {
    case literal(Value)
    case link(node: String, output: Int)
}

/// A validated node: its definition, bound inputs and resolved files.
public struct GraphNode: Sendable {
    public var id: String
    public var definition: NodeDefinition
    public var inputs: [String: BoundInput]
    public var files: [String: URL]
    public var location: SourceLocation

    public var upstream: [String] {
        var seen = Set<String>()
        var out: [String] = []
        for name in inputs.keys.sorted() {
            if case .link(let n, _) = inputs[name]!, seen.insert(n).inserted { out.append(n) }
        }
        return out
    }
}

/// Text of the workflow for metadata (PNG chunks): the YAML source and ComfyUI API-format JSON.
public struct WorkflowSource: Sendable {
    public var path: String
    public var yaml: String
    public var apiJSON: String
}

/// A workflow that validated: every node typed, linked and resolved; pruned to its output nodes.
public struct Graph: Sendable {
    public var nodes: [String: GraphNode]
    /// Node ids in a topological order (dependencies first), restricted to what outputs need.
    public var order: [String]
    public var outputs: [String]
    public var source: WorkflowSource
}
