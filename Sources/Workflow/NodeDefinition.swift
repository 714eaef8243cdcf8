import Foundation

/// How a string input names a file: it is resolved before anything runs (absolute path; else relative
/// to the workflow's folder; else under each models folder and its ComfyUI sub-folders) and the file's
/// identity (path, size, modification time) becomes part of the node's signature.
public struct FileRole: Sendable, Hashable {
    /// ComfyUI sub-folders searched under each models folder (`checkpoints`, `loras`, ...).
    public var folders: [String]
    /// Whether the name may be a folder (a diffusers pipeline) instead of a file.
    public var allowsDirectory: Bool
    public init(folders: [String], allowsDirectory: Bool = false) {
        self.folders = folders
        self.allowsDirectory = allowsDirectory
    }
}

/// One declared input of a node type.
public struct InputSpec: Sendable {
    public var name: String
    public var type: ValueType
    public var defaultValue: Value?
    public var isOptional: Bool
    public var min: Double?
    public var max: Double?
    /// For enum inputs (type STRING): the allowed values.
    public var choices: [String]?
    public var file: FileRole?
    /// INT inputs that must be a multiple of this (image sizes: 8).
    public var multipleOf: Int?
    public var help: String

    public init(_ name: String, _ type: ValueType, default defaultValue: Value? = nil, optional: Bool = false,
                min: Double? = nil, max: Double? = nil, choices: [String]? = nil, file: FileRole? = nil,
                multipleOf: Int? = nil, help: String = "") {
        self.name = name
        self.type = type
        self.defaultValue = defaultValue
        self.isOptional = optional
        self.min = min
        self.max = max
        self.choices = choices
        self.file = file
        self.multipleOf = multipleOf
        self.help = help
    }

    /// Required unless optional or defaulted.
    public var isRequired: Bool { !isOptional && defaultValue == nil }

    public static func int(_ name: String, default d: Int? = nil, min: Int? = nil, max: Int? = nil, multipleOf: Int? = nil,
                           help: String = "") -> InputSpec {
        InputSpec(name, .int, default: d.map { .int($0) }, min: min.map(Double.init), max: max.map(Double.init),
                  multipleOf: multipleOf, help: help)
    }
    public static func float(_ name: String, default d: Double? = nil, min: Double? = nil, max: Double? = nil, help: String = "") -> InputSpec {
        InputSpec(name, .float, default: d.map { .float($0) }, min: min, max: max, help: help)
    }
    public static func string(_ name: String, default d: String? = nil, help: String = "") -> InputSpec {
        InputSpec(name, .string, default: d.map { .string($0) }, help: help)
    }
    public static func bool(_ name: String, default d: Bool? = nil, help: String = "") -> InputSpec {
        InputSpec(name, .boolean, default: d.map { .bool($0) }, help: help)
    }
    public static func choice(_ name: String, _ choices: [String], default d: String? = nil, help: String = "") -> InputSpec {
        InputSpec(name, .string, default: d.map { .string($0) }, choices: choices, help: help)
    }
    public static func file(_ name: String, folders: [String], directory: Bool = false, optional: Bool = false,
                            help: String = "") -> InputSpec {
        InputSpec(name, .string, optional: optional, file: FileRole(folders: folders, allowsDirectory: directory), help: help)
    }
    public static func link(_ name: String, _ type: ValueType, optional: Bool = false, help: String = "") -> InputSpec {
        InputSpec(name, type, optional: optional, help: help)
    }
}

/// One declared output of a node type.
public struct OutputSpec: Sendable {
    public var name: String
    public var type: ValueType
    public init(_ name: String, _ type: ValueType) {
        self.name = name
        self.type = type
    }
}

/// A node type: its interface and its compute function.
public struct NodeDefinition: Sendable {
    public var name: String
    /// Other names accepted in workflow files (ComfyUI class names); the first is used in ComfyUI JSON.
    public var aliases: [String]
    public var category: String
    public var summary: String
    public var inputs: [InputSpec]
    public var outputs: [OutputSpec]
    /// Output nodes (SaveImage, ...) are what a workflow is run for; everything else is pruned to them.
    public var isOutput: Bool
    /// Heavy nodes use every core by themselves; at most one runs at a time.
    public var isHeavy: Bool
    public var run: @Sendable (NodeContext) throws -> [Value]

    public init(name: String, aliases: [String] = [], category: String = "", summary: String = "",
                inputs: [InputSpec], outputs: [OutputSpec], isOutput: Bool = false, isHeavy: Bool = false,
                run: @escaping @Sendable (NodeContext) throws -> [Value]) {
        self.name = name
        self.aliases = aliases
        self.category = category
        self.summary = summary
        self.inputs = inputs
        self.outputs = outputs
        self.isOutput = isOutput
        self.isHeavy = isHeavy
        self.run = run
    }

    public func input(named n: String) -> InputSpec? { inputs.first { $0.name == n } }
    public func outputIndex(named n: String) -> Int? { outputs.firstIndex { $0.name == n } }
    /// The class name ComfyUI knows this node by.
    public var comfyName: String { aliases.first ?? name }
}

/// An error a node raises; the engine adds the node's id and type.
public struct NodeError: Error, CustomStringConvertible, Sendable {
    public var input: String?
    public var message: String
    public init(_ message: String, input: String? = nil) {
        self.message = message
        self.input = input
    }
    public var description: String { input.map { "input '\($0)': \(message)" } ?? message }
}

/// Thrown by `NodeContext.checkCancelled()` after Ctrl-C.
public struct CancelledError: Error, CustomStringConvertible, Sendable {
    public init() {}
    public var description: String { "cancelled" }
}
