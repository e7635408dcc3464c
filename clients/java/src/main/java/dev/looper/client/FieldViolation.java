package dev.looper.client;

/** A bad field of a request, from the server's google.rpc.BadRequest detail. */
public record FieldViolation(String field, String description) {}
