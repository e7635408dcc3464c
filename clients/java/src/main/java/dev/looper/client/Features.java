package dev.looper.client;

import dev.looper.v1.FeatureValue;
import java.util.LinkedHashMap;
import java.util.Map;

/** Typed feature values from Java values: Boolean, Integer/Long, Float/Double, String, null. */
public final class Features {
  private Features() {}

  /** One value as a FeatureValue; null is "missing". */
  public static FeatureValue of(Object value) {
    if (value == null) {
      return FeatureValue.getDefaultInstance();
    }
    if (value instanceof FeatureValue fv) {
      return fv;
    }
    if (value instanceof Boolean b) {
      return FeatureValue.newBuilder().setBoolValue(b).build();
    }
    if (value instanceof Integer || value instanceof Long || value instanceof Short || value instanceof Byte) {
      return FeatureValue.newBuilder().setInt64Value(((Number) value).longValue()).build();
    }
    if (value instanceof Float || value instanceof Double) {
      return FeatureValue.newBuilder().setDoubleValue(((Number) value).doubleValue()).build();
    }
    if (value instanceof CharSequence s) {
      return FeatureValue.newBuilder().setStringValue(s.toString()).build();
    }
    throw new IllegalArgumentException(
        "feature values must be Boolean, Integer, Long, Float, Double, String or null, not " + value.getClass().getName());
  }

  /** A map of values as FeatureValues. */
  public static Map<String, FeatureValue> of(Map<String, ?> values) {
    Map<String, FeatureValue> out = new LinkedHashMap<>();
    values.forEach((name, value) -> out.put(name, of(value)));
    return out;
  }
}
