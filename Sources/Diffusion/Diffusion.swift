import Tensor
/// The SDXL model family lives here (see DESIGN.md §5); models arrive with the model issue.
public enum DiffusionModule {}
