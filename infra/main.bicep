// alertcap in Azure: Function App (Flex Consumption, Python 3.11) with a user-assigned
// managed identity, its storage, monitoring, least-privilege custom roles split by scope,
// ACS email, optionally the Durable Task Scheduler, and the action group + metric alert that
// call POST /api/alerts.
//
// Deploy in this order (README.md, "Deploy to Azure", has the commands):
//   1. infrastructure:  az deployment group create -g <rg> -f infra/main.bicep -p ...  (deployAlerting=false, the default)
//   2. code:            make package && az functionapp deployment source config-zip ... --src dist/alertcap.zip
//   3. alerting:        the same deployment again with deployAlerting=true
// Alerting comes last because the webhook must find the published /api/alerts (and, with
// webhookAuth=functionKey, listKeys of the host only answers once code and storage roles exist).
//
// infra/azuredeploy.json is the same template in ARM JSON, written by hand (no Bicep compiler
// here); tests/infra checks the two stay equivalent and evaluates the JSON for many
// parameter combinations (no duplicate role assignment, none at subscription scope).
//
// No parameter default and no output holds a secret. With webhookAuth=entra (the default) the
// template reads no key at all; with functionKey it reads the host's default key into the
// action group's webhook URL at deploy time (never an output).

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------

@description('Region of the function app, its plan, storage for the host, monitoring and the Durable Task Scheduler. Must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
param location string = resourceGroup().location

@description('Region of the VMs: the capture storage account goes there (Network Watcher writes captures to an account in the VM\'s region) and the metric alert targets it.')
param vmLocation string

@description('Short prefix for resource names: 3-11 lowercase letters and digits, starting with a letter (storage account naming). Anything else fails the deployment with a name that says so.')
@minLength(3)
@maxLength(11)
param namePrefix string = 'alertcap'

@description('Resource ids of the resource groups holding the Network Watchers of the VMs\' regions (usually /subscriptions/<sub>/resourceGroups/NetworkWatcherRG). The Network Watcher role is assigned on each, never on the subscription.')
@minLength(1)
param watcherResourceGroupIds array

@description('Resource ids of the resource groups holding the VMs alertcap may capture on. The VM role (read; extension write only with installAgent) is assigned on each, never on the subscription.')
@minLength(1)
param vmResourceGroupIds array

@description('Standby VMs (ring-buffer captures, harvested on alert): VM ids, and resource-group ids whose VMs tagged alertcap-standby=true are standby. Empty: no standby.')
param standbyTargets array = []

@description('Resource ids of the VMs the metric alert watches. One rule covers them all, so they must share one subscription and vmLocation. Empty: no alert rule.')
param vmResourceIds array = []

@description('Platform metric that signals unusual traffic.')
@allowed([
  'Network Out Total'
  'Outbound Flows'
])
param alertMetric string = 'Network Out Total'

@description('Dynamic threshold sensitivity: High alerts on smaller deviations.')
@allowed([
  'Low'
  'Medium'
  'High'
])
param alertSensitivity string = 'Medium'

@description('Step 3 of 3: create the action group and the alert rule. Leave false for the first deployment (step 1), publish the code (step 2), then deploy again with true.')
param deployAlerting bool = false

@description('How the action group authenticates to /api/alerts. entra: Azure Monitor\'s secure webhook (an Entra token for the app registration in webhookAppClientId, validated by App Service Authentication); functionKey: the host key in the URL (readable by anyone with Reader on the action group; fallback only).')
@allowed([
  'entra'
  'functionKey'
])
param webhookAuth string = 'entra'

@description('webhookAuth=entra: application (client) id of the app registration the action group gets tokens for (it has the ActionGroupsSecureWebhook app role assigned to the AzNS AAD Webhook service principal).')
param webhookAppClientId string = ''

@description('webhookAuth=entra: object id of that app registration (the action group\'s secure webhook asks for it).')
param webhookAppObjectId string = ''

@description('webhookAuth=entra: Application ID URI of that app registration, e.g. api://<client id>; the token audience.')
param webhookAppIdUri string = ''

@secure()
@description('Teams Workflows webhook URL ("When a Teams webhook request is received"), or a Key Vault reference @Microsoft.KeyVault(SecretUri=...); empty: no Teams card.')
param teamsUrl string = ''

@secure()
@description('Slack incoming webhook URL, or a Key Vault reference; empty: no Slack message.')
param slackUrl string = ''

@secure()
@description('PagerDuty Events API v2 integration key (32 characters), or a Key Vault reference; empty: no PagerDuty alert.')
param pagerDutyRoutingKey string = ''

@secure()
@description('Generic webhook receiving each run signed with HMAC-SHA256 (Alertcap-Signature), or a Key Vault reference; empty: none.')
param webhookUrl string = ''

@secure()
@description('Shared secret(s) signing the webhook, comma-separated while rotating (16+ characters each), or a Key Vault reference.')
param webhookSecret string = ''

@description('Who gets the capture email: addresses separated by commas (ALERTCAP_EMAIL_RECIPIENTS).')
param emailRecipients string

@description('Data location of the Communication Services resources (e.g. United States, Europe).')
param emailDataLocation string = 'United States'

@description('Install the Network Watcher agent extension on a VM that lacks it (ALERTCAP_INSTALL_AGENT). Only then does the VM role carry virtualMachines/extensions/write.')
param installAgent bool = false

@description('Capture time limit in seconds, 1-18000 (ALERTCAP_CAPTURE_TIME_LIMIT_SECONDS).')
@minValue(1)
@maxValue(18000)
param captureTimeLimitSeconds int = 300

@description('Bytes captured per packet; 0 = whole packet (ALERTCAP_CAPTURE_BYTES_PER_PACKET).')
@minValue(0)
@maxValue(65535)
param captureBytesPerPacket int = 0

@description('Bytes per capture session (ALERTCAP_CAPTURE_TOTAL_BYTES).')
@minValue(1)
@maxValue(4294967295)
param captureTotalBytes int = 1073741824

@description('Capture filters as JSON, e.g. [{"protocol":"TCP","remotePort":"443"}]; empty = everything (ALERTCAP_CAPTURE_FILTERS).')
param captureFilters string = ''

@description('Also keep the capture on the VM at this path ending in .cap; empty = storage only (ALERTCAP_CAPTURE_LOCAL_FILE_PATH).')
param captureLocalFilePath string = ''

@description('Refuse to start a capture when the watcher already holds this many sessions (ALERTCAP_CAPTURE_LIMIT).')
@minValue(1)
@maxValue(10000)
param captureLimit int = 10000

@description('Hours the emailed read-only link to the capture stays valid, 1-168 (ALERTCAP_LINK_TTL_HOURS).')
@minValue(1)
@maxValue(168)
param linkTtlHours int = 24

@description('Days a capture blob is kept in the capture account before the lifecycle rule deletes it.')
@minValue(1)
@maxValue(3650)
param captureRetentionDays int = 30

@description('Flex Consumption: most instances the app scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Flex Consumption: memory of each instance.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Durable Functions backend: azureStorage (the host\'s storage account; the default) or durableTaskScheduler (a managed scheduler with its own dashboard).')
@allowed([
  'azureStorage'
  'durableTaskScheduler'
])
param durableBackend string = 'azureStorage'

@description('durableTaskScheduler: object ids of the operators (users or groups) who may read the task hub in the scheduler\'s dashboard (Durable Task Data Reader).')
param operatorPrincipalIds array = []

// ---------------------------------------------------------------------------------------
// Names and constants
// ---------------------------------------------------------------------------------------

var token = uniqueString(resourceGroup().id, namePrefix)
var prefix = toLower(namePrefix)
// Storage account naming: lowercase letters and digits only. A prefix that breaks it turns
// the storage names into this sentence, so the deployment fails saying why (ARM has no
// assert; the storage provider rejects the name and quotes it).
var alphabet = 'abcdefghijklmnopqrstuvwxyz'
var alphanumerics = '${alphabet}0123456789'
var badPrefixCharacters = filter(range(0, length(prefix)), i => !contains(alphanumerics, substring(prefix, i, 1)))
var prefixIsValid = empty(badPrefixCharacters) && contains(alphabet, substring(prefix, 0, 1))
var invalidPrefix = 'namePrefix-must-be-lowercase-letters-and-digits'
var appName = '${prefix}-${token}'
// Two storage accounts on purpose: the host's can refuse shared keys (identity only) and
// gives the identity full data rights to its own queues/tables/blobs; the capture account
// must allow shared keys (Network Watcher writes with SAS), sits in the VMs' region, and
// the app may only read it.
var hostStorageName = prefixIsValid ? take('${prefix}h${token}', 24) : invalidPrefix
var captureStorageName = prefixIsValid ? take('${prefix}c${token}', 24) : invalidPrefix
var deploymentContainer = 'app-package'
var captureContainer = 'network-watcher-logs'
var useScheduler = durableBackend == 'durableTaskScheduler'
var taskHubName = 'alertcap'
// Azure Monitor's action groups sign in as this multi-tenant application (the "AzNS AAD
// Webhook" service principal): App Service Authentication accepts its tokens only.
var actionGroupsAppId = '461e8683-5575-4561-ac7f-899cc907d62a'

// Each custom role holds exactly what infra/permissions.py derives for its scope (tests/infra checks it).
var watcherRoleActions = [
  'Microsoft.Network/networkWatchers/packetCaptures/delete'
  'Microsoft.Network/networkWatchers/packetCaptures/queryStatus/action'
  'Microsoft.Network/networkWatchers/packetCaptures/queryStatus/read'
  'Microsoft.Network/networkWatchers/packetCaptures/read'
  'Microsoft.Network/networkWatchers/packetCaptures/stop/action'
  'Microsoft.Network/networkWatchers/packetCaptures/write'
  'Microsoft.Network/networkWatchers/read'
]
var vmRoleActions = [
  'Microsoft.Compute/virtualMachines/extensions/read'
  'Microsoft.Compute/virtualMachines/read'
  'Microsoft.Compute/virtualMachines/write'
  'Microsoft.Resources/subscriptions/resourceGroups/resources/read'
]
var agentRoleActions = [
  'Microsoft.Compute/virtualMachines/extensions/read'
  'Microsoft.Compute/virtualMachines/extensions/write'
]
var storageRoleActions = [
  'Microsoft.Storage/storageAccounts/listAccountSas/action'
  'Microsoft.Storage/storageAccounts/listKeys/action'
  'Microsoft.Storage/storageAccounts/listServiceSas/action'
  'Microsoft.Storage/storageAccounts/read'
]

// One entry per resource group however it was spelled: an id listed twice (or in two
// casings) would otherwise make two assignments of one role to one principal on one scope.
var watcherGroups = union(map(watcherResourceGroupIds, id => toLower(id)), [])
var vmGroups = union(map(vmResourceGroupIds, id => toLower(id)), [])
var operators = union(operatorPrincipalIds, [])

var watcherRoleGuid = guid(subscription().id, resourceGroup().id, namePrefix, 'watchers')
var vmRoleGuid = guid(subscription().id, resourceGroup().id, namePrefix, 'vms')
var storageRoleGuid = guid(subscription().id, resourceGroup().id, namePrefix, 'capture-storage')
var watcherRoleId = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', watcherRoleGuid)
var vmRoleId = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', vmRoleGuid)
var storageRoleId = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageRoleGuid)

// Built-in roles (GUIDs are the same in every tenant).
var storageBlobDataReader = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var communicationAndEmailServiceOwner = '09976791-48a7-449e-bb21-39d1a415f350'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'
var durableTaskDataContributor = '0ad04412-c4d5-4796-b79c-f76d14c8d402'
var durableTaskDataReader = 'd6a5505f-6ebb-45a4-896e-ac8274cfc0ac'
// What the Functions host needs on its own storage with identity-based AzureWebJobsStorage:
// Storage Blob Data Owner, Storage Queue Data Contributor, Storage Table Data Contributor.
var hostStorageRoles = [
  'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
]

// ---------------------------------------------------------------------------------------
// Identity, storage, monitoring
// ---------------------------------------------------------------------------------------

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${prefix}-id-${token}'
  location: location
}

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: hostStorageName
  location: location
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    // The host and the deployment both use the managed identity.
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
  }
}

resource deploymentPackageContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  name: '${hostStorage.name}/default/${deploymentContainer}'
  properties: {
    publicAccess: 'None'
  }
}

// Network Watcher writes captures here, into the container network-watcher-logs, which it
// creates itself on the first capture (so the template does not). It must be in the VMs' region.
resource captureStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: captureStorageName
  location: vmLocation
  kind: 'StorageV2'
  sku: {
    // Network Watcher needs a Standard (not Premium) account.
    name: 'Standard_LRS'
  }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    // Network Watcher uploads with a SAS signed by the account key.
    allowSharedKeyAccess: true
  }
}

// Captures are evidence for a while, not forever: delete them after captureRetentionDays.
resource captureRetention 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: captureStorage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          enabled: true
          name: 'expire-captures'
          type: 'Lifecycle'
          definition: {
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: captureRetentionDays
                }
              }
            }
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${captureContainer}/'
              ]
            }
          }
        }
      ]
    }
  }
}

resource logs 'Microsoft.OperationalInsights/workspaces@2022-10-01' = {
  name: '${prefix}-logs-${token}'
  location: location
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${prefix}-ai-${token}'
  location: location
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    // Telemetry only with an Entra token (the app's identity, Monitoring Metrics Publisher):
    // the connection string alone no longer lets anyone write into this resource.
    DisableLocalAuth: true
  }
}

// ---------------------------------------------------------------------------------------
// Email: Email Communication Service + Azure-managed domain, linked to an ACS resource
// ---------------------------------------------------------------------------------------

resource emailService 'Microsoft.Communication/emailServices@2023-04-01' = {
  name: '${prefix}-email-${token}'
  location: 'global'
  properties: {
    dataLocation: emailDataLocation
  }
}

resource emailDomain 'Microsoft.Communication/emailServices/domains@2023-04-01' = {
  parent: emailService
  name: 'AzureManagedDomain'
  location: 'global'
  properties: {
    domainManagement: 'AzureManaged'
    userEngagementTracking: 'Disabled'
  }
}

resource communication 'Microsoft.Communication/communicationServices@2023-04-01' = {
  name: '${prefix}-acs-${token}'
  location: 'global'
  properties: {
    dataLocation: emailDataLocation
    linkedDomains: [
      emailDomain.id
    ]
  }
}

// ---------------------------------------------------------------------------------------
// Durable Task Scheduler (durableBackend=durableTaskScheduler only)
// ---------------------------------------------------------------------------------------

resource scheduler 'Microsoft.DurableTask/schedulers@2025-11-01' = if (useScheduler) {
  name: '${prefix}-dts-${token}'
  location: location
  properties: {
    // Callers authenticate with Entra ID (no keys exist); the allow-list is not the guard.
    ipAllowlist: [
      '0.0.0.0/0'
    ]
    sku: {
      name: 'Consumption'
    }
  }
}

resource taskHub 'Microsoft.DurableTask/schedulers/taskHubs@2025-11-01' = if (useScheduler) {
  parent: scheduler
  name: taskHubName
}

// ---------------------------------------------------------------------------------------
// The function app
// ---------------------------------------------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: '${prefix}-plan-${token}'
  location: location
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      // Flex Consumption takes the runtime from functionAppConfig.runtime below and does
      // not use FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION app settings.
      appSettings: [
        {
          name: 'AzureWebJobsStorage__accountName'
          value: hostStorage.name
        }
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identity.properties.clientId
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: insights.properties.ConnectionString
        }
        {
          // Entra authentication to Application Insights (DisableLocalAuth above).
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'ClientId=${identity.properties.clientId};Authorization=AAD'
        }
        {
          // The Durable backend, overriding host.json's extensions.durableTask.storageProvider
          // (azureStorage keeps the extension's defaults: the host's own storage account).
          name: 'AzureFunctionsJobHost__extensions__durableTask__storageProvider__type'
          value: useScheduler ? 'azureManaged' : 'AzureStorage'
        }
        {
          name: 'AzureFunctionsJobHost__extensions__durableTask__storageProvider__connectionStringName'
          value: useScheduler ? 'DURABLE_TASK_SCHEDULER_CONNECTION_STRING' : 'AzureWebJobsStorage'
        }
        {
          // Identity-based: names the endpoint and the identity, holds no key.
          name: 'DURABLE_TASK_SCHEDULER_CONNECTION_STRING'
          value: useScheduler ? 'Endpoint=${scheduler!.properties.endpoint};Authentication=ManagedIdentity;ClientID=${identity.properties.clientId}' : ''
        }
        {
          name: 'AZURE_CLIENT_ID'
          value: identity.properties.clientId
        }
        {
          name: 'ALERTCAP_ARM_ENDPOINT'
          value: environment().resourceManager
        }
        {
          name: 'ALERTCAP_STORAGE_ACCOUNT_ID'
          value: captureStorage.id
        }
        {
          name: 'ALERTCAP_EMAIL_ENDPOINT'
          value: 'https://${communication.properties.hostName}'
        }
        {
          name: 'ALERTCAP_EMAIL_SENDER'
          value: 'DoNotReply@${emailDomain.properties.mailFromSenderDomain}'
        }
        {
          name: 'ALERTCAP_EMAIL_RECIPIENTS'
          value: emailRecipients
        }
        {
          // entra: /api/alerts trusts App Service Authentication's validated principal
          // instead of a function key (the app's side of the secure webhook).
          name: 'ALERTCAP_WEBHOOK_AUTH'
          value: webhookAuth
        }
        {
          name: 'ALERTCAP_INSTALL_AGENT'
          value: string(installAgent)
        }
        {
          name: 'ALERTCAP_CAPTURE_TIME_LIMIT_SECONDS'
          value: string(captureTimeLimitSeconds)
        }
        {
          name: 'ALERTCAP_CAPTURE_BYTES_PER_PACKET'
          value: string(captureBytesPerPacket)
        }
        {
          name: 'ALERTCAP_CAPTURE_TOTAL_BYTES'
          value: string(captureTotalBytes)
        }
        {
          name: 'ALERTCAP_CAPTURE_FILTERS'
          value: captureFilters
        }
        {
          name: 'ALERTCAP_CAPTURE_LOCAL_FILE_PATH'
          value: captureLocalFilePath
        }
        {
          name: 'ALERTCAP_CAPTURE_LIMIT'
          value: string(captureLimit)
        }
        {
          name: 'ALERTCAP_LINK_TTL_HOURS'
          value: string(linkTtlHours)
        }
        // Tuning knobs at the app's own defaults (alertcap/settings.py ENV), set so an
        // operator sees and changes them in the portal without reading the code.
        {
          name: 'ALERTCAP_CAPTURE_PREFIX'
          value: 'alertcap'
        }
        {
          name: 'ALERTCAP_POLL_INTERVAL_SECONDS'
          value: '15'
        }
        {
          name: 'ALERTCAP_MAX_POLL_INTERVAL_SECONDS'
          value: '60'
        }
        {
          name: 'ALERTCAP_STOP_GRACE_SECONDS'
          value: '120'
        }
        {
          name: 'ALERTCAP_POLLS_PER_GENERATION'
          value: '40'
        }
        {
          name: 'ALERTCAP_RETRY_FIRST_INTERVAL_MS'
          value: '5000'
        }
        {
          name: 'ALERTCAP_RETRY_MAX_ATTEMPTS'
          value: '5'
        }
        {
          name: 'ALERTCAP_LRO_POLLING_SECONDS'
          value: '5'
        }
        {
          name: 'ALERTCAP_MAX_BODY_BYTES'
          value: '262144'
        }
        {
          name: 'ALERTCAP_SUMMARY_TOP'
          value: '10'
        }
        {
          name: 'ALERTCAP_NOTIFY_RETRY_FIRST_SECONDS'
          value: '60'
        }
        {
          name: 'ALERTCAP_NOTIFY_RETRY_MAX_SECONDS'
          value: '1800'
        }
        {
          name: 'ALERTCAP_NOTIFY_GIVE_UP_SECONDS'
          value: '86400'
        }
        {
          // run records outlive their Durable instances: kept in the app's own account
          name: 'ALERTCAP_RUNS_CONTAINER_URL'
          value: '${hostStorage.properties.primaryEndpoints.blob}alertcap-runs'
        }
        {
          name: 'ALERTCAP_DOCTOR_TARGETS'
          value: join(union(vmResourceIds, vmResourceGroupIds), ',')
        }
        {
          name: 'ALERTCAP_DOCTOR_STATE_BLOB'
          value: '${hostStorage.properties.primaryEndpoints.blob}alertcap-doctor/state.json'
        }
        {
          name: 'ALERTCAP_TEAMS_URL'
          value: teamsUrl
        }
        {
          name: 'ALERTCAP_SLACK_URL'
          value: slackUrl
        }
        {
          name: 'ALERTCAP_PAGERDUTY_ROUTING_KEY'
          value: pagerDutyRoutingKey
        }
        {
          name: 'ALERTCAP_WEBHOOK_URL'
          value: webhookUrl
        }
        {
          name: 'ALERTCAP_WEBHOOK_SECRET'
          value: webhookSecret
        }
        {
          name: 'ALERTCAP_PAGERDUTY_URL'
          value: 'https://events.pagerduty.com/v2/enqueue'
        }
        {
          name: 'ALERTCAP_CHANNEL_TIMEOUT_SECONDS'
          value: '10'
        }
        {
          name: 'ALERTCAP_FANOUT_CONCURRENCY'
          value: '20'
        }
        {
          name: 'ALERTCAP_MAX_TARGETS_PER_ALERT'
          value: '500'
        }
        {
          // the orphan sweep (issue #12 B4) looks for our captures where the role lets us
          name: 'ALERTCAP_ORPHAN_SWEEP_SCOPES'
          value: join(watcherGroups, ',')
        }
        {
          name: 'ALERTCAP_ORPHAN_SWEEP_MINUTES'
          value: '5'
        }
        {
          // standby rings (issue #14): VM ids and resource-group ids (tagged VMs in them)
          name: 'ALERTCAP_STANDBY_TARGETS'
          value: join(standbyTargets, ',')
        }
        {
          name: 'ALERTCAP_STANDBY_TAG'
          value: 'alertcap-standby'
        }
        {
          name: 'ALERTCAP_STANDBY_LOOKBACK_SECONDS'
          value: '600'
        }
        {
          name: 'ALERTCAP_STANDBY_MODE'
          value: 'both'
        }
        {
          name: 'ALERTCAP_STANDBY_FILE_COUNT'
          value: '10'
        }
        {
          name: 'ALERTCAP_STANDBY_FILE_SIZE_BYTES'
          value: '104857600'
        }
        {
          name: 'ALERTCAP_STANDBY_SESSION_SECONDS'
          value: '86400'
        }
        {
          name: 'ALERTCAP_STANDBY_MAX_RING_BYTES'
          value: '2147483648'
        }
        {
          name: 'ALERTCAP_STANDBY_CHECK_SECONDS'
          value: '300'
        }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostStorage.properties.primaryEndpoints.blob}${deploymentContainer}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
  dependsOn: [
    deploymentPackageContainer
  ]
}

// No FTP or SCM basic-auth publishing: deployments use Entra ID (az functionapp deployment).
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

// webhookAuth=entra: App Service Authentication validates the action group's Entra token
// (audience webhookAppIdUri, client = the action groups' application) before the request
// reaches the app. Requests without a token pass through unauthenticated so that operators'
// routes keep working with their function keys; the app's /api/alerts refuses them.
resource webhookAuthentication 'Microsoft.Web/sites/config@2024-04-01' = if (webhookAuth == 'entra') {
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: false
      unauthenticatedClientAction: 'AllowAnonymous'
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: webhookAppClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            webhookAppIdUri
          ]
          defaultAuthorizationPolicy: {
            allowedApplications: [
              actionGroupsAppId
            ]
          }
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// Roles: one custom role per kind of scope, each assigned only where it is needed
// ---------------------------------------------------------------------------------------

module watcherRole 'modules/role-definition.bicep' = {
  name: 'alertcap-role-watchers-${token}'
  scope: subscription()
  params: {
    roleGuid: watcherRoleGuid
    roleName: 'alertcap network watcher (${appName})'
    roleDescription: 'alertcap: create, poll, stop and delete packet captures on the Network Watchers.'
    actions: watcherRoleActions
    assignableScopes: watcherGroups
  }
}

module vmRole 'modules/role-definition.bicep' = {
  name: 'alertcap-role-vms-${token}'
  scope: subscription()
  params: {
    roleGuid: vmRoleGuid
    roleName: 'alertcap virtual machines (${appName})'
    roleDescription: 'alertcap: read the VMs a capture targets (and install the Network Watcher agent when installAgent is set).'
    actions: installAgent ? union(vmRoleActions, agentRoleActions) : vmRoleActions
    assignableScopes: vmGroups
  }
}

module storageRole 'modules/role-definition.bicep' = {
  name: 'alertcap-role-storage-${token}'
  scope: subscription()
  params: {
    roleGuid: storageRoleGuid
    roleName: 'alertcap capture storage (${appName})'
    roleDescription: 'alertcap: let Network Watcher write captures to the capture storage account.'
    actions: storageRoleActions
    assignableScopes: [
      resourceGroup().id
    ]
  }
}

module watcherAccess 'modules/rg-role-assignment.bicep' = [for (groupId, i) in watcherGroups: {
  name: 'alertcap-watchers-${token}-${i}'
  scope: resourceGroup(split(groupId, '/')[2], split(groupId, '/')[4])
  params: {
    principalId: identity.properties.principalId
    roleDefinitionId: watcherRoleId
  }
  dependsOn: [
    watcherRole
  ]
}]

module vmAccess 'modules/rg-role-assignment.bicep' = [for (groupId, i) in vmGroups: {
  name: 'alertcap-vms-${token}-${i}'
  scope: resourceGroup(split(groupId, '/')[2], split(groupId, '/')[4])
  params: {
    principalId: identity.properties.principalId
    roleDefinitionId: vmRoleId
  }
  dependsOn: [
    vmRole
  ]
}]

// The storage actions Network Watcher checks, on the capture account only.
resource captureWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(captureStorage.id, identity.id, storageRoleId)
  scope: captureStorage
  properties: {
    roleDefinitionId: storageRoleId
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
  dependsOn: [
    storageRole
  ]
}

// Read the .cap blobs and get a user delegation key for the read link (capture account only).
resource captureReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(captureStorage.id, identity.id, storageBlobDataReader)
  scope: captureStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataReader)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Standby only (issue #14): a harvest copies ring files beside the run (blob write).
resource captureWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(standbyTargets)) {
  name: guid(captureStorage.id, identity.id, storageBlobDataContributor)
  scope: captureStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// The Functions host's own storage: blobs, queues and tables of the Durable task hub.
resource hostStorageAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in hostStorageRoles: {
  name: guid(hostStorage.id, identity.id, roleId)
  scope: hostStorage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}]

// Telemetry with Entra authentication (Application Insights has local auth off).
resource telemetryPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(insights.id, identity.id, monitoringMetricsPublisher)
  scope: insights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Send email through the ACS resource with the managed identity.
resource emailSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(communication.id, identity.id, communicationAndEmailServiceOwner)
  scope: communication
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', communicationAndEmailServiceOwner)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Durable Task Scheduler: the app runs the task hub; operators read it in the dashboard.
resource schedulerWorker 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (useScheduler) {
  name: guid(taskHub.id, identity.id, durableTaskDataContributor)
  scope: taskHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', durableTaskDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource schedulerReaders 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for operator in operators: if (useScheduler) {
  name: guid(taskHub.id, operator, durableTaskDataReader)
  scope: taskHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', durableTaskDataReader)
    principalId: operator
  }
}]

// ---------------------------------------------------------------------------------------
// Alerting (step 3): action group -> POST /api/alerts; metric alert with a dynamic threshold
// ---------------------------------------------------------------------------------------

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (deployAlerting) {
  name: '${prefix}-ag-${token}'
  location: 'Global'
  properties: {
    groupShortName: 'alertcap'
    enabled: true
    webhookReceivers: webhookAuth == 'entra' ? [
      {
        // Secure webhook: Azure Monitor sends a bearer token for webhookAppIdUri; no key in the URL.
        name: 'alertcap'
        serviceUri: 'https://${functionApp.properties.defaultHostName}/api/alerts'
        useCommonAlertSchema: true
        useAadAuth: true
        objectId: webhookAppObjectId
        identifierUri: webhookAppIdUri
        tenantId: tenant().tenantId
      }
    ] : [
      {
        // Fallback: the default host function key; it stays inside the action group (never an output).
        name: 'alertcap'
        serviceUri: 'https://${functionApp.properties.defaultHostName}/api/alerts?code=${listKeys('${functionApp.id}/host/default', '2024-04-01').functionKeys.default}'
        useCommonAlertSchema: true
        useAadAuth: false
      }
    ]
  }
}

resource alertRule 'Microsoft.Insights/metricAlerts@2018-03-01' = if (deployAlerting && !empty(vmResourceIds)) {
  name: '${prefix}-unusual-traffic-${token}'
  location: 'global'
  properties: {
    description: 'More outbound traffic than usual: start an alertcap packet capture on the VM.'
    severity: 3
    enabled: true
    scopes: vmResourceIds
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    targetResourceType: 'Microsoft.Compute/virtualMachines'
    targetResourceRegion: vmLocation
    autoMitigate: true
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.MultipleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'DynamicThresholdCriterion'
          name: 'UnusualOutboundTraffic'
          metricNamespace: 'Microsoft.Compute/virtualMachines'
          metricName: alertMetric
          operator: 'GreaterThan'
          alertSensitivity: alertSensitivity
          failingPeriods: {
            numberOfEvaluationPeriods: 4
            minFailingPeriodsToAlert: 3
          }
          timeAggregation: alertMetric == 'Outbound Flows' ? 'Average' : 'Total'
        }
      ]
    }
    actions: [
      {
        actionGroupId: actionGroup.id
      }
    ]
  }
}

// ---------------------------------------------------------------------------------------
// Outputs (no keys, no connection strings)
// ---------------------------------------------------------------------------------------

@description('Name of the function app (for make package + az functionapp deployment source config-zip).')
output functionAppName string = functionApp.name

@description('Host name of the function app.')
output functionAppHost string = functionApp.properties.defaultHostName

@description('Client id of the app\'s managed identity (its AZURE_CLIENT_ID).')
output identityClientId string = identity.properties.clientId

@description('Resource ids of the custom roles, by the scope they are assigned on.')
output roleDefinitionIds object = {
  watchers: watcherRoleId
  vms: vmRoleId
  captureStorage: storageRoleId
}

@description('Resource id of the action group (empty until deployAlerting is true).')
output actionGroupId string = deployAlerting ? actionGroup.id : ''

@description('Durable Task Scheduler dashboard for operators (empty with durableBackend=azureStorage).')
output durableTaskDashboardUrl string = useScheduler ? 'https://dashboard.durabletask.io/?endpoint=${uriComponent(scheduler!.properties.endpoint)}&taskhub=${taskHubName}' : ''
