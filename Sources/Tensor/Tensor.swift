// Placeholder until the Tensor issue lands.
public enum TensorModule {}
