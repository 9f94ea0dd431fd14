// One of alertcap's custom roles: exactly the actions its code needs at one kind of scope
// (the lists are derived from infra/permissions.py and checked by tests/infra). Role
// definitions live at the subscription, so main.bicep deploys this module there, once per role.
targetScope = 'subscription'

@description('GUID naming the role definition (main.bicep derives it, so re-deploys update the same role).')
param roleGuid string

@description('Display name of the role; unique in the tenant.')
param roleName string

@description('What the role is for (shown in the portal).')
param roleDescription string

@description('Control-plane actions the role allows.')
param actions array

@description('Where the role may be assigned: the resource groups it is assigned on (never the subscription).')
param assignableScopes array

resource role 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: roleGuid
  properties: {
    roleName: roleName
    description: roleDescription
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
