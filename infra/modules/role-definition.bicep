// The custom role alertcap's identity gets: exactly the actions its code calls (the list is
// derived from alertcap/permissions.py and checked by tests/infra). Role definitions live at
// the subscription, so main.bicep deploys this module there.
targetScope = 'subscription'

@description('GUID naming the role definition (main.bicep derives it, so re-deploys update the same role).')
param roleGuid string

@description('Display name of the role; unique in the tenant.')
param roleName string

@description('Control-plane actions the role allows.')
param actions array

@description('Where the role may be assigned: the resource groups the app works in, or the subscription.')
param assignableScopes array

resource role 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: roleGuid
  properties: {
    roleName: roleName
    description: 'alertcap: Network Watcher packet capture on alerting VMs (read VMs, install the agent, create/poll/stop/delete captures).'
    type: 'CustomRole'
    permissions: [
      {
        actions: actions
        notActions: []
      }
    ]
    assignableScopes: assignableScopes
  }
}

@description('Resource id of the role definition.')
output roleDefinitionId string = role.id
