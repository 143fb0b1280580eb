using System.Globalization;
using System.Net;
using System.Reflection;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Memo.Ingest.Configuration;
using Memo.Ingest.TestSupport;
using Xunit;

namespace Memo.Ingest.IntegrationTests;

/// <summary>
/// Docker cannot run on our machines, so the container image, compose file and Kubernetes manifests in deploy/ are
/// checked for what can be checked without it: they parse (npm "yaml", promtool), every setting they pass is an
/// option the gateway really binds and the README documents, ports and paths match the gateway's, the grace periods
/// outlast the drain, and the probes and the image's health check work against a real gateway.
/// </summary>
[Collection(PostgresCollection.Name)]
public sealed partial class DeploymentFilesTests(PostgresFixture postgres)
{
    private static readonly string Deploy = Path.Combine(RepositoryScript.Root, "deploy");

    private static readonly Type[] OptionTypes =
        [typeof(IngestOptions), typeof(WhatsAppOptions), typeof(RedisOptions), typeof(AuthOptions), typeof(StreamOptions), typeof(ServerOptions)];

    [Fact]
    public async Task EveryYamlFile_Parses()
    {
        string[] files = [.. Directory.EnumerateFiles(Deploy, "*.y*ml", SearchOption.AllDirectories)];
        Assert.True(files.Length >= 12, $"found only {files.Length} YAML files");
        foreach (string file in files)
        {
            JsonArray documents = await ParseYamlAsync(file);
            Assert.NotEmpty(documents);
        }
    }

    [Fact]
    public async Task EverySettingPassedToTheGateway_IsABoundOption_DocumentedInTheReadme()
    {
        string readme = await File.ReadAllTextAsync(Path.Combine(RepositoryScript.Root, "README.md"));
        var settings = new Dictionary<string, string>();
        foreach ((string key, JsonNode? value) in (await ComposeGatewayAsync())["environment"]!.AsObject())
        {
            settings[key] = value!.ToString();
        }

        foreach (JsonNode manifest in await KubernetesAsync("configmap.yaml", "secret.yaml"))
        {
            foreach ((string key, JsonNode? value) in (manifest["data"] ?? manifest["stringData"])!.AsObject())
            {
                settings[key] = value!.ToString();
            }
        }

        Assert.True(settings.Count >= 10);
        foreach ((string key, string value) in settings)
        {
            // Array settings (AppSecrets__0, __1, …) are documented by their first element.
            string documented = ArrayIndex().Replace(key, "__0");
            Assert.True(readme.Contains($"`{documented}`", StringComparison.Ordinal), $"{key} is not in the README's configuration table");
            if (key.StartsWith("Memo__", StringComparison.Ordinal))
            {
                AssertBindsToAnOption(key, value);
            }
            else
            {
                Assert.Contains(key, (string[])["ASPNETCORE_URLS", "ConnectionStrings__Postgres", "ConnectionStrings__Redis"]);
            }
        }
    }

    [Fact]
    public async Task PortsAgree_AcrossImage_Compose_Balancer_Prometheus_AndKubernetes()
    {
        const int Port = 8080;
        string dockerfile = await File.ReadAllTextAsync(Path.Combine(Deploy, "Dockerfile"));
        Assert.Contains($"EXPOSE {Port}", dockerfile, StringComparison.Ordinal);
        Assert.Contains($"ENV ASPNETCORE_URLS=http://+:{Port}", dockerfile, StringComparison.Ordinal);
        Assert.Equal($"http://+:{Port}", (await ComposeGatewayAsync())["environment"]!["ASPNETCORE_URLS"]!.ToString());

        string nginx = await File.ReadAllTextAsync(Path.Combine(Deploy, "compose", "nginx.conf"));
        string[] upstreams = [.. UpstreamServer().Matches(nginx).Select(static m => m.Groups[1].Value)];
        Assert.Equal(["gateway-1", "gateway-2"], upstreams);
        Assert.All(UpstreamServer().Matches(nginx), static m => Assert.Equal(Port.ToString(CultureInfo.InvariantCulture), m.Groups[2].Value));
        JsonNode compose = (await ParseYamlAsync(Path.Combine(Deploy, "compose", "compose.yaml")))[0]!;
        foreach (string upstream in upstreams)
        {
            Assert.NotNull(compose["services"]![upstream]);
        }

        JsonNode prometheus = (await ParseYamlAsync(Path.Combine(Deploy, "compose", "prometheus.yml")))[0]!;
        string[] targets = [.. prometheus["scrape_configs"]![0]!["static_configs"]![0]!["targets"]!.AsArray().Select(static t => t!.ToString())];
        Assert.Equal(upstreams.Select(static u => $"{u}:{Port}"), targets);

        JsonNode deployment = (await KubernetesAsync("deployment.yaml"))[0];
        JsonNode container = deployment["spec"]!["template"]!["spec"]!["containers"]![0]!;
        Assert.Equal(Port, (int)container["ports"]![0]!["containerPort"]!);
        Assert.Equal(Port.ToString(CultureInfo.InvariantCulture), deployment["spec"]!["template"]!["metadata"]!["annotations"]!["prometheus.io/port"]!.ToString());
        JsonNode config = (await KubernetesAsync("configmap.yaml"))[0];
        Assert.Equal($"http://+:{Port}", config["data"]!["ASPNETCORE_URLS"]!.ToString());
        JsonNode service = (await KubernetesAsync("service.yaml"))[0];
        Assert.Equal(container["ports"]![0]!["name"]!.ToString(), service["spec"]!["ports"]![0]!["targetPort"]!.ToString());
    }

    [Fact]
    public async Task GracePeriods_OutlastTheGatewaysDrain()
    {
        JsonNode deployment = (await KubernetesAsync("deployment.yaml"))[0];
        JsonNode pod = deployment["spec"]!["template"]!["spec"]!;
        int drain = int.Parse((await KubernetesAsync("configmap.yaml"))[0]["data"]!["Memo__Ingest__ShutdownTimeoutSeconds"]!.ToString(), CultureInfo.InvariantCulture);
        int preStop = (int)pod["containers"]![0]!["lifecycle"]!["preStop"]!["sleep"]!["seconds"]!;
        Assert.True((int)pod["terminationGracePeriodSeconds"]! > preStop + drain, "Kubernetes would SIGKILL during the drain");

        JsonNode gateway = await ComposeGatewayAsync();
        int composeDrain = int.Parse(gateway["environment"]!["Memo__Ingest__ShutdownTimeoutSeconds"]!.ToString(), CultureInfo.InvariantCulture);
        string grace = gateway["stop_grace_period"]!.ToString();
        Assert.EndsWith("s", grace, StringComparison.Ordinal);
        Assert.True(int.Parse(grace[..^1], CultureInfo.InvariantCulture) > composeDrain, "compose would SIGKILL during the drain");
        Assert.Equal(new IngestOptions().ShutdownTimeoutSeconds, drain);
    }

    [Fact]
    public async Task ProbesAndTheImagesHealthCheck_WorkAgainstARealGateway()
    {
        string database = await postgres.Server.CreateDatabaseAsync("deployprobes");
        await using GatewayHost gateway = await GatewayHost.StartAsync(database);
        JsonNode container = (await KubernetesAsync("deployment.yaml"))[0]["spec"]!["template"]!["spec"]!["containers"]![0]!;
        foreach (string probe in (string[])["readinessProbe", "livenessProbe", "startupProbe"])
        {
            string path = container[probe]!["httpGet"]!["path"]!.ToString();
            using HttpResponseMessage response = await gateway.Client.GetAsync(path);
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{probe} {path} answered {(int)response.StatusCode}");
        }

        Assert.Equal("/readyz", container["readinessProbe"]!["httpGet"]!["path"]!.ToString());
        Assert.Equal("/healthz", container["livenessProbe"]!["httpGet"]!["path"]!.ToString());

        // The image has no shell or curl: its HEALTHCHECK runs the binary's own probe command.
        string dockerfile = await File.ReadAllTextAsync(Path.Combine(Deploy, "Dockerfile"));
        Match healthCheck = HealthCheck().Match(dockerfile);
        Assert.True(healthCheck.Success, "Dockerfile HEALTHCHECK");
        Assert.Equal("probe", healthCheck.Groups[1].Value);
        Assert.Equal("/readyz", new Uri(healthCheck.Groups[2].Value).AbsolutePath);
        Assert.Equal(0, await RunProbeAsync(new Uri(gateway.Address, "/readyz").ToString()));
        Assert.Equal(1, await RunProbeAsync($"http://127.0.0.1:{PostgresServer.FreePort()}/readyz"));
        Assert.Equal(1, await RunProbeAsync(new Uri(gateway.Address, "/no-such-path").ToString()));
    }

    [Fact]
    public async Task Image_RunsTheNativeBinary_AsTheNonRootUserKubernetesExpects()
    {
        string dockerfile = await File.ReadAllTextAsync(Path.Combine(Deploy, "Dockerfile"));
        string runtimeStage = dockerfile[dockerfile.LastIndexOf("\nFROM ", StringComparison.Ordinal)..];
        Match user = Regex.Match(runtimeStage, @"^USER (\d+)$", RegexOptions.Multiline);
        Assert.True(user.Success, "the runtime stage sets a numeric USER (Kubernetes' runAsNonRoot needs a number)");
        int uid = int.Parse(user.Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.NotEqual(0, uid);
        Assert.Contains("ENTRYPOINT [\"/app/Memo.Ingest\"]", runtimeStage, StringComparison.Ordinal);
        Assert.Contains("dotnet publish src/Memo.Ingest ", dockerfile, StringComparison.Ordinal);

        // The restore layer copies every project the gateway references; a new reference must be added there.
        string project = await File.ReadAllTextAsync(Path.Combine(RepositoryScript.Root, "src", "Memo.Ingest", "Memo.Ingest.csproj"));
        foreach (Match reference in Regex.Matches(project, "ProjectReference Include=\"../([^/]+)/"))
        {
            string name = reference.Groups[1].Value;
            Assert.Contains($"COPY src/{name}/{name}.csproj src/{name}/", dockerfile, StringComparison.Ordinal);
        }

        JsonNode pod = (await KubernetesAsync("deployment.yaml"))[0]["spec"]!["template"]!["spec"]!;
        Assert.True((bool)pod["securityContext"]!["runAsNonRoot"]!);
        Assert.Equal(uid, (int)pod["securityContext"]!["runAsUser"]!);
        Assert.True((bool)pod["containers"]![0]!["securityContext"]!["readOnlyRootFilesystem"]!);
    }

    [Fact]
    public async Task Secrets_StayOutOfConfigMapsAndComposeLiterals()
    {
        static bool IsSecret(string key) => key.StartsWith("ConnectionStrings__", StringComparison.Ordinal)
            || key.Contains("AppSecrets", StringComparison.Ordinal) || key.Contains("SigningKeys", StringComparison.Ordinal)
            || key.Contains("VerifyToken", StringComparison.Ordinal);

        JsonNode config = (await KubernetesAsync("configmap.yaml"))[0];
        Assert.DoesNotContain(config["data"]!.AsObject(), static pair => IsSecret(pair.Key));
        JsonNode secret = (await KubernetesAsync("secret.yaml"))[0];
        Assert.All(secret["stringData"]!.AsObject(), static pair => Assert.True(IsSecret(pair.Key), $"{pair.Key} needs no Secret"));

        // Compose takes every secret from .env; .env.example names every variable it needs.
        string example = await File.ReadAllTextAsync(Path.Combine(Deploy, "compose", ".env.example"));
        foreach ((string key, JsonNode? value) in (await ComposeGatewayAsync())["environment"]!.AsObject())
        {
            if (IsSecret(key) && key != "ConnectionStrings__Redis")
            {
                Match variable = ComposeVariable().Match(value!.ToString());
                Assert.True(variable.Success, $"{key} is a literal in compose.yaml");
                Assert.Contains($"\n{variable.Groups[1].Value}=", "\n" + example, StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public async Task KubernetesObjects_ReferToEachOther()
    {
        JsonNode kustomization = (await KubernetesAsync("kustomization.yaml"))[0];
        string[] resources = [.. kustomization["resources"]!.AsArray().Select(static r => r!.ToString())];
        string[] present = [.. Directory.EnumerateFiles(Path.Combine(Deploy, "kubernetes"), "*.yaml").Select(Path.GetFileName).Where(static f => f != "kustomization.yaml")!];
        Assert.Equal(present.Order(), resources.Order());

        JsonNode deployment = (await KubernetesAsync("deployment.yaml"))[0];
        string name = deployment["metadata"]!["name"]!.ToString();
        JsonNode podLabels = deployment["spec"]!["template"]!["metadata"]!["labels"]!;
        Assert.True(JsonNode.DeepEquals(podLabels, deployment["spec"]!["selector"]!["matchLabels"]));
        Assert.True(JsonNode.DeepEquals(podLabels, (await KubernetesAsync("service.yaml"))[0]["spec"]!["selector"]));
        Assert.True(JsonNode.DeepEquals(podLabels, (await KubernetesAsync("pdb.yaml"))[0]["spec"]!["selector"]!["matchLabels"]));
        JsonNode hpa = (await KubernetesAsync("hpa.yaml"))[0];
        Assert.Equal(name, hpa["spec"]!["scaleTargetRef"]!["name"]!.ToString());
        Assert.True((int)hpa["spec"]!["minReplicas"]! > (int)(await KubernetesAsync("pdb.yaml"))[0]["spec"]!["minAvailable"]!,
            "with minReplicas = minAvailable, a node drain could never evict a pod");

        JsonNode container = deployment["spec"]!["template"]!["spec"]!["containers"]![0]!;
        string[] sources = [.. container["envFrom"]!.AsArray().Select(static s => (s!["configMapRef"] ?? s["secretRef"])!["name"]!.ToString())];
        Assert.Equal(
            [(await KubernetesAsync("configmap.yaml"))[0]["metadata"]!["name"]!.ToString(), (await KubernetesAsync("secret.yaml"))[0]["metadata"]!["name"]!.ToString()],
            sources);
        Assert.Equal(0, (int)deployment["spec"]!["strategy"]!["rollingUpdate"]!["maxUnavailable"]!);
    }

    [Fact]
    public async Task ComposePrometheusAndGrafana_LoadTheShippedRulesAndDashboard()
    {
        JsonNode compose = (await ParseYamlAsync(Path.Combine(Deploy, "compose", "compose.yaml")))[0]!;
        string[] prometheusVolumes = [.. compose["services"]!["prometheus"]!["volumes"]!.AsArray().Select(static v => v!.ToString())];
        string[] grafanaVolumes = [.. compose["services"]!["grafana"]!["volumes"]!.AsArray().Select(static v => v!.ToString())];
        AssertMountedFilesExist([.. prometheusVolumes, .. grafanaVolumes]);

        // promtool resolves rule files beside the configuration, as the container does under /etc/prometheus.
        string directory = Directory.CreateTempSubdirectory("memo-prometheus").FullName;
        try
        {
            foreach (string volume in prometheusVolumes)
            {
                string[] parts = volume.Split(':');
                File.Copy(Path.Combine(Deploy, "compose", parts[0]), Path.Combine(directory, Path.GetFileName(parts[1])));
            }

            (int exitCode, string output) = await ExternalTool.RunAsync("promtool", null, "check", "config", Path.Combine(directory, "prometheus.yml"));
            Assert.True(exitCode == 0, "promtool check config: " + output);
            Assert.Contains("SUCCESS: 1 rule files found", output, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }

        // The dashboard provider reads the directory the dashboard is mounted into.
        JsonNode provider = (await ParseYamlAsync(Path.Combine(Deploy, "compose", "grafana", "dashboards.yml")))[0]!["providers"]![0]!;
        string dashboardMount = grafanaVolumes.Single(static v => v.Contains("dashboard.json", StringComparison.Ordinal)).Split(':')[1];
        Assert.Equal(provider["options"]!["path"]!.ToString(), Path.GetDirectoryName(dashboardMount));
        JsonNode dashboard = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(Deploy, "grafana", "memo-ingest-dashboard.json")))!;
        Assert.Equal("prometheus", dashboard["templating"]!["list"]![0]!["query"]!.ToString());
    }

    private static void AssertMountedFilesExist(IEnumerable<string> volumes)
    {
        foreach (string volume in volumes)
        {
            string source = volume.Split(':')[0];
            Assert.True(File.Exists(Path.Combine(Deploy, "compose", source)), $"compose mounts {source}, which does not exist");
        }
    }

    private static void AssertBindsToAnOption(string key, string value)
    {
        string[] parts = key.Split("__");
        Type? options = OptionTypes.SingleOrDefault(t => (string)t.GetField("Section")!.GetValue(null)! == $"{parts[0]}:{parts[1]}");
        Assert.True(options is not null, $"{key}: no options section {parts[0]}:{parts[1]}");
        PropertyInfo? property = options.GetProperty(parts[2]);
        Assert.True(property is not null, $"{key}: {options.Name} has no property {parts[2]}");
        if (property.PropertyType == typeof(int))
        {
            Assert.True(int.TryParse(value, CultureInfo.InvariantCulture, out _), $"{key}={value} is not an integer");
        }
        else if (property.PropertyType == typeof(double))
        {
            Assert.True(double.TryParse(value, CultureInfo.InvariantCulture, out _), $"{key}={value} is not a number");
        }
    }

    private static async Task<int> RunProbeAsync(string url)
    {
        (int exitCode, _) = await ExternalTool.RunAsync("dotnet", null, Path.Combine(AppContext.BaseDirectory, "Memo.Ingest.dll"), "probe", url);
        return exitCode;
    }

    private static async Task<JsonNode> ComposeGatewayAsync() =>
        (await ParseYamlAsync(Path.Combine(Deploy, "compose", "compose.yaml")))[0]!["services"]!["gateway-1"]!;

    private static async Task<List<JsonNode>> KubernetesAsync(params string[] files)
    {
        var manifests = new List<JsonNode>();
        foreach (string file in files)
        {
            manifests.AddRange((await ParseYamlAsync(Path.Combine(Deploy, "kubernetes", file))).Select(static d => d!));
        }

        return manifests;
    }

    /// <summary>Parses with npm "yaml" (tests/js/yaml-to-json.mjs); YAML merge keys and anchors are resolved.</summary>
    private static async Task<JsonArray> ParseYamlAsync(string file)
    {
        (int exitCode, string output) = await ExternalTool.RunAsync("node", null, Path.Combine(RepositoryScript.Root, "tests", "js", "yaml-to-json.mjs"), file);
        Assert.True(exitCode == 0, $"{file} does not parse: {output}");
        return JsonNode.Parse(output)!.AsArray();
    }

    [GeneratedRegex(@"__\d+$")]
    private static partial Regex ArrayIndex();

    [GeneratedRegex(@"^\s*server ([\w-]+):(\d+)", RegexOptions.Multiline)]
    private static partial Regex UpstreamServer();

    [GeneratedRegex(@"HEALTHCHECK[^\n]*\\\n\s*CMD \[""/app/Memo.Ingest"", ""(\w+)"", ""([^""]+)""\]")]
    private static partial Regex HealthCheck();

    [GeneratedRegex(@"\$\{(\w+):[?-]")]
    private static partial Regex ComposeVariable();
}
