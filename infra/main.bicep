// alertcap in Azure: Function App (Flex Consumption, Python 3.11) with a user-assigned
// managed identity, its storage, monitoring, a least-privilege custom role, ACS email, and
// the action group + metric alert that call POST /api/alerts.
//
// Deploy to a resource group:
//   az deployment group create -g <rg> -f infra/main.bicep -p emailRecipients=oncall@example.com
// infra/azuredeploy.json is the same template in ARM JSON, written by hand (no Bicep compiler
// here); tests/infra checks the two stay equivalent.
//
// No parameter default and no output holds a secret: the only key the template touches is
// the function key in the action group's webhook URL, read with listKeys at deploy time.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------

@description('Region for every regional resource. The capture storage account must be in the VMs\' region (Network Watcher writes there), so deploy to that region.')
param location string = resourceGroup().location

@description('Short lowercase prefix (letters and digits) for resource names.')
@minLength(3)
@maxLength(11)
param namePrefix string = 'alertcap'

@description('Resource ids of the resource groups the app works in: those of the VMs, and the one holding the Network Watchers (usually NetworkWatcherRG). The custom role is assigned on each. Empty: the role is assigned on the whole subscription.')
param captureResourceGroupIds array = []

@description('Resource ids of the VMs the metric alert watches. One rule covers them all, so they must share one subscription and one region (vmRegion). Empty: no alert rule.')
param vmResourceIds array = []

@description('Region of the VMs in vmResourceIds (a multi-resource metric alert needs it).')
param vmRegion string = location

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

@description('Create the action group and the alert rule. Set false for a first pass if listing the function key fails before the app has started once, then deploy again with true.')
param deployAlerting bool = true

@description('Who gets the capture email: addresses separated by commas (ALERTCAP_EMAIL_RECIPIENTS).')
param emailRecipients string

@description('Data location of the Communication Services resources (e.g. United States, Europe).')
param emailDataLocation string = 'United States'

@description('Install the Network Watcher agent extension on a VM that lacks it (ALERTCAP_INSTALL_AGENT).')
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

@description('Flex Consumption: most instances the app scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Flex Consumption: memory of each instance.')
@allowed([
  2048
  4096
])
param instanceMemoryMB int = 2048

// ---------------------------------------------------------------------------------------
// Names and constants
// ---------------------------------------------------------------------------------------

var token = uniqueString(resourceGroup().id, namePrefix)
var prefix = toLower(namePrefix)
var appName = '${prefix}-${token}'
// Two storage accounts on purpose: the host's can refuse shared keys (identity only) and
// gives the identity full data rights to its own queues/tables/blobs; the capture account
// must allow shared keys (Network Watcher writes with SAS) and the app may only read it.
var hostStorageName = take('${prefix}h${token}', 24)
var captureStorageName = take('${prefix}c${token}', 24)
var deploymentContainer = 'app-package'

// Exactly what alertcap/permissions.py derives from the code (tests/infra checks it).
var customRoleActions = [
  'Microsoft.Compute/virtualMachines/extensions/read'
  'Microsoft.Compute/virtualMachines/extensions/write'
  'Microsoft.Compute/virtualMachines/read'
  'Microsoft.Compute/virtualMachines/write'
  'Microsoft.Network/networkWatchers/packetCaptures/delete'
  'Microsoft.Network/networkWatchers/packetCaptures/queryStatus/action'
  'Microsoft.Network/networkWatchers/packetCaptures/read'
  'Microsoft.Network/networkWatchers/packetCaptures/stop/action'
  'Microsoft.Network/networkWatchers/packetCaptures/write'
  'Microsoft.Network/networkWatchers/read'
  'Microsoft.Storage/storageAccounts/listAccountSas/action'
  'Microsoft.Storage/storageAccounts/listKeys/action'
  'Microsoft.Storage/storageAccounts/listServiceSas/action'
  'Microsoft.Storage/storageAccounts/read'
]
var roleName = 'alertcap capture operator (${appName})'
var roleGuid = guid(subscription().id, resourceGroup().id, roleName)
var roleDefinitionId = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleGuid)
var roleScopes = empty(captureResourceGroupIds) ? [
  subscription().id
] : union(captureResourceGroupIds, [
  resourceGroup().id
])

// Built-in roles (GUIDs are the same in every tenant).
var storageBlobDataReader = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
var communicationAndEmailServiceOwner = '09976791-48a7-449e-bb21-39d1a415f350'
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
// creates itself on the first capture (so the template does not).
resource captureStorage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: captureStorageName
  location: location
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

// ---------------------------------------------------------------------------------------
// Roles
// ---------------------------------------------------------------------------------------

module customRole 'modules/role-definition.bicep' = {
  name: 'alertcap-roledef-${token}'
  scope: subscription()
  params: {
    roleGuid: roleGuid
    roleName: roleName
    actions: customRoleActions
    assignableScopes: roleScopes
  }
}

// The custom role where the VMs and watchers are (each listed resource group) ...
module customRoleOnGroups 'modules/rg-role-assignment.bicep' = [for (groupId, i) in captureResourceGroupIds: {
  name: 'alertcap-role-${token}-${i}'
  scope: resourceGroup(split(groupId, '/')[2], split(groupId, '/')[4])
  params: {
    principalId: identity.properties.principalId
    roleDefinitionId: roleDefinitionId
  }
  dependsOn: [
    customRole
  ]
}]

// ... or on the whole subscription when none is listed ...
module customRoleOnSubscription 'modules/subscription-role-assignment.bicep' = if (empty(captureResourceGroupIds)) {
  name: 'alertcap-role-${token}-sub'
  scope: subscription()
  params: {
    principalId: identity.properties.principalId
    roleDefinitionId: roleDefinitionId
  }
  dependsOn: [
    customRole
  ]
}

// ... and on this resource group, for the capture storage account Network Watcher writes to.
resource customRoleHere 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(captureResourceGroupIds)) {
  name: guid(resourceGroup().id, identity.id, roleDefinitionId)
  properties: {
    roleDefinitionId: roleDefinitionId
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
  dependsOn: [
    customRole
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

// ---------------------------------------------------------------------------------------
// Alerting: action group -> POST /api/alerts; metric alert with a dynamic threshold
// ---------------------------------------------------------------------------------------

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (deployAlerting) {
  name: '${prefix}-ag-${token}'
  location: 'Global'
  properties: {
    groupShortName: 'alertcap'
    enabled: true
    webhookReceivers: [
      {
        name: 'alertcap'
        // The default host function key; it stays inside the action group (never an output).
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
    targetResourceRegion: vmRegion
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

@description('Name of the function app (for func azure functionapp publish).')
output functionAppName string = functionApp.name

@description('Host name of the function app.')
output functionAppHost string = functionApp.properties.defaultHostName

@description('Client id of the app\'s managed identity (its AZURE_CLIENT_ID).')
output identityClientId string = identity.properties.clientId

@description('Resource id of the custom role.')
output roleDefinitionId string = roleDefinitionId

@description('Resource id of the action group (empty when deployAlerting is false).')
output actionGroupId string = deployAlerting ? actionGroup.id : ''
