# Shared by ./qvlm4j and ./run-tests: finds a JDK >= 25 and Maven, builds the jar when stale.
# Sourced, not executed. Sets QVLM4J_JAVA (the java binary) and exports JAVA_HOME.

QVLM4J_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
QVLM4J_MIN_JAVA=25
export MAVEN_OPTS="${MAVEN_OPTS:-} --sun-misc-unsafe-memory-access=allow"

qvlm4j_die() {
    echo "qvlm4j: $*" >&2
    exit 2
}

# Major version of a java binary, or empty when it cannot run.
qvlm4j_java_major() {
    local v
    v="$("$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = //p' | head -1)"
    echo "${v%%.*}"
}

qvlm4j_find_jdk() {
    local candidates=() c major
    [ -n "${JAVA_HOME:-}" ] && candidates+=("$JAVA_HOME")
    for c in /usr/lib/jvm/* /opt/java/* /opt/jdk* "$HOME"/.sdkman/candidates/java/*; do
        [ -d "$c" ] && candidates+=("$c")
    done
    if command -v java >/dev/null 2>&1; then
        candidates+=("$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")")
    fi
    for c in "${candidates[@]}"; do
        if [ -x "$c/bin/java" ] && [ -x "$c/bin/javac" ]; then
            major="$(qvlm4j_java_major "$c/bin/java")"
            if [ -n "$major" ] && [ "$major" -ge "$QVLM4J_MIN_JAVA" ] 2>/dev/null; then
                export JAVA_HOME="$c"
                QVLM4J_JAVA="$c/bin/java"
                return 0
            fi
        fi
    done
    qvlm4j_die "no JDK >= $QVLM4J_MIN_JAVA found (looked at \$JAVA_HOME, /usr/lib/jvm/*, /opt, the java on PATH). Install one, e.g. Temurin 25, and set JAVA_HOME to it."
}

qvlm4j_need_mvn() {
    command -v mvn >/dev/null 2>&1 || qvlm4j_die "Maven (mvn) is not on PATH; install it (e.g. apt-get install maven) to build qvlm4j."
}

# Builds target/qvlm4j.jar and target/lib/ when missing or older than any source.
qvlm4j_build_if_stale() {
    local jar="$QVLM4J_ROOT/target/qvlm4j.jar"
    if [ -f "$jar" ] && [ -d "$QVLM4J_ROOT/target/lib" ] \
        && [ -z "$(find "$QVLM4J_ROOT/src/main" "$QVLM4J_ROOT/pom.xml" -newer "$jar" -print -quit)" ]; then
        return 0
    fi
    qvlm4j_need_mvn
    echo "qvlm4j: building (first use or sources changed) ..." >&2
    (cd "$QVLM4J_ROOT" && mvn -q -B package -DskipTests) >&2 || qvlm4j_die "build failed (see Maven output above)"
}
