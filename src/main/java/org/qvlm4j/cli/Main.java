package org.qvlm4j.cli;

public final class Main {
    public static void main(String[] args) {
        System.out.println("qvlm4j");
    }
}
