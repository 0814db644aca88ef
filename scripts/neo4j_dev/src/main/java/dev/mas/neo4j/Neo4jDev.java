package dev.mas.neo4j;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseInternalSettings;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.connectors.HttpsConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.harness.Neo4j;
import org.neo4j.harness.Neo4jBuilders;
import org.neo4j.io.ByteUnit;

/**
 * Real Neo4j 5 Community server (in-process, via neo4j-harness) for tests and local runs.
 *
 * <pre>
 *   java -cp neo4j-dev.jar:lib/* dev.mas.neo4j.Neo4jDev --port 7687 --work-dir DIR [--host 127.0.0.1] [--pid-file FILE]
 * </pre>
 *
 * Bolt on host:port, auth disabled, HTTP/HTTPS disabled, usage reporting off. The database lives in a fresh
 * sub-directory of DIR that the harness deletes on close, so every start is an empty graph.
 * Blocks until SIGTERM/SIGINT; a shutdown hook closes the harness cleanly.
 * Writes DIR/ready (containing the Bolt URI) once Bolt accepts connections.
 */
public final class Neo4jDev {
    private Neo4jDev() {}

    public static void main(String[] args) throws Exception {
        String host = "127.0.0.1";
        int port = 7687;
        Path workDir = Path.of(".mas/neo4j/work");
        Path pidFile = null;
        long pageCacheMb = Long.getLong("neo4jdev.pagecache.mb", 128L);
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--port": port = Integer.parseInt(args[++i]); break;
                case "--host": host = args[++i]; break;
                case "--work-dir": workDir = Path.of(args[++i]); break;
                case "--pid-file": pidFile = Path.of(args[++i]); break;
                default:
                    System.err.println("unknown argument: " + args[i]);
                    System.exit(2);
            }
        }
        if (pidFile != null) {
            // The launcher writes $! already; this makes the file exact even if a wrapper forked.
            Files.writeString(pidFile, ProcessHandle.current().pid() + "\n");
        }
        Files.createDirectories(workDir);
        Path ready = workDir.resolve("ready");
        Files.deleteIfExists(ready);

        long t0 = System.nanoTime();
        System.out.printf("neo4j-dev: starting Neo4j (harness) on bolt://%s:%d, work dir %s%n", host, port, workDir);
        final Neo4j neo4j;
        try {
            neo4j = Neo4jBuilders.newInProcessBuilder(workDir)
                .withDisabledServer() // no HTTP connector: Bolt only
                .withConfig(BoltConnector.enabled, true)
                .withConfig(BoltConnector.listen_address, new SocketAddress(host, port))
                .withConfig(BoltConnector.advertised_address, new SocketAddress(host, port))
                .withConfig(BoltConnector.encryption_level, BoltConnector.EncryptionLevel.DISABLED)
                .withConfig(HttpConnector.enabled, false)
                .withConfig(HttpsConnector.enabled, false)
                .withConfig(GraphDatabaseSettings.auth_enabled, false)
                .withConfig(GraphDatabaseSettings.pagecache_memory, ByteUnit.mebiBytes(pageCacheMb))
                .withConfig(GraphDatabaseSettings.udc_enabled, false)
                // Netty's graceful-shutdown quiet period (default 5 s, twice) made every stop take ~10 s.
                .withConfig(GraphDatabaseInternalSettings.netty_server_shutdown_quiet_period, 0)
                .build();
        } catch (Throwable t) {
            System.out.println("neo4j-dev: Neo4j failed to start");
            t.printStackTrace(System.out);
            System.out.flush();
            // Non-daemon threads of a half-started server must not keep the JVM alive.
            Runtime.getRuntime().halt(1);
            return;
        }

        final String uri = neo4j.boltURI().toString();
        final Path home = neo4j.config().get(GraphDatabaseSettings.neo4j_home);
        final CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            long s0 = System.nanoTime();
            System.out.println("neo4j-dev: shutting down");
            try {
                Files.deleteIfExists(ready);
            } catch (IOException ignored) {
                // best effort
            }
            try {
                neo4j.close();
                System.out.printf("neo4j-dev: stopped after %.1f s%n", (System.nanoTime() - s0) / 1e9);
                System.out.flush();
            } catch (Throwable t) {
                t.printStackTrace();
            } finally {
                stopped.countDown();
            }
        }, "neo4j-dev-shutdown"));

        Files.writeString(ready, "bolt://" + host + ":" + port + "\n");
        System.out.printf("neo4j-dev: ready on bolt://%s:%d (harness reports %s) after %.1f s; "
                        + "server logs in %s (neo4j.log, logs/debug.log), deleted on stop%n",
                host, port, uri, (System.nanoTime() - t0) / 1e9, home);
        System.out.flush();

        // Block until the JVM is asked to exit (SIGTERM/SIGINT run the hook above).
        stopped.await();
    }
}
